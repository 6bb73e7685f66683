package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kickagent/kickagent/internal/bundle"
	"github.com/kickagent/kickagent/internal/engine"
)

var bundleUsage = `Usage: kickagent bundle build --src DIR --revision REV --signing-key FILE [--key-id ID] [--scope S] -o FILE

Builds and signs a policy bundle for agents that take their rules from a
bundle server (bundle: in the config; README "Fleet"). DIR holds rules/
(YAML rules files, the same documents as local ones, *.yaml or *.yml) and
policy/ (Rego files, package kickagent); nothing else. The bundle is
checked as an agent loads it before it is written: a bundle that would be
refused is never published. The signing key is a PEM RSA private key
(openssl genrsa -out fleet.pem 2048); agents verify with its public key
(openssl rsa -in fleet.pem -pubout -out fleet.pub), whose file name
without the extension is the key id they expect (default: the signing
key's file name without the extension).

Publishing: copy the file to the server atomically, and on nginx (ETag =
mtime + size) give it a later mtime than the file it replaces: two
bundles of one size published in the same second would share an ETag, and
agents would keep the old one (README "Fleet", "How to publish").

The flags are:
  --src DIR           the bundle's source directory
  --revision REV      the revision agents report (kickagent_bundle_info)
  --signing-key FILE  PEM RSA private key
  --key-id ID         the key id in the signature
  --scope S           a scope agents configured with bundle.scope require
  -o FILE             the bundle file to write
` + exitStatus(exitOK, exitFailure, exitUsage, exitConfig)

func runBundle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "build" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "-help") {
			fmt.Fprint(stdout, bundleUsage)
			return exitOK
		}
		fmt.Fprint(stderr, bundleUsage)
		return exitUsage
	}
	fs := newFlagSet("bundle build", bundleUsage, stderr)
	src := fs.String("src", "", "source directory")
	rev := fs.String("revision", "", "revision")
	key := fs.String("signing-key", "", "PEM RSA private key")
	keyID := fs.String("key-id", "", "key id")
	scope := fs.String("scope", "", "scope")
	out := fs.String("o", "", "output file")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return helpOr(err)
	}
	if len(pos) > 0 || *src == "" || *rev == "" || *key == "" || *out == "" {
		fmt.Fprintln(stderr, "kickagent bundle build: --src, --revision, --signing-key and -o are required, and nothing else")
		return exitUsage
	}
	b, err := bundle.Build(*src, *rev)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent bundle build: %v\n", err)
		return exitConfig
	}
	eb, err := engineBundle(b)
	if err == nil {
		_, err = engine.Load(ctx, engine.Sources{Bundle: eb})
	}
	if err != nil {
		printErr(stderr, "bundle build", err)
		return exitConfig
	}
	pem, err := os.ReadFile(*key)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent bundle build: %v\n", err)
		return exitConfig
	}
	id := *keyID
	if id == "" {
		id = trimExt(filepath.Base(*key))
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, b, bundle.Signing{KeyPEM: pem, KeyID: id, Scope: *scope}); err != nil {
		fmt.Fprintf(stderr, "kickagent bundle build: %v\n", err)
		return exitConfig
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(stderr, "kickagent bundle build: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "bundle %s: %d rules file(s), %d Rego module(s), signed with key id %q, written to %s\n",
		*rev, len(eb.Rules), len(eb.Modules), id, *out)
	return exitOK
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }
