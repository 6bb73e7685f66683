// Command mkbundle builds and signs a kickagent bundle (internal/bundle's
// layout) for the tests and the nginx rig, and makes RSA key pairs:
//
//	mkbundle -src DIR -rev REV -key signing.pem -keyid ID [-scope S] -o bundle.tar.gz
//	mkbundle -genkey PREFIX     writes PREFIX.pem (private) and PREFIX.pub
//
// Without -key the bundle is unsigned, which agents with keys refuse.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kickagent/kickagent/internal/bundle"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkbundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := fs.String("src", "", "source directory (rules/*.yaml, policy/*.rego)")
	rev := fs.String("rev", "", "bundle revision")
	key := fs.String("key", "", "PEM RSA private key to sign with (none: unsigned)")
	keyID := fs.String("keyid", "kickagent", "signing key id")
	scope := fs.String("scope", "", "scope claim to sign (agents configured with a scope require it)")
	out := fs.String("o", "", "output file")
	genkey := fs.String("genkey", "", "write an RSA key pair PREFIX.pem and PREFIX.pub and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch {
	case *genkey != "":
		err = genKey(*genkey)
	case *src == "" || *rev == "" || *out == "":
		fmt.Fprintln(stderr, "mkbundle: -src, -rev and -o are required")
		return 2
	default:
		err = build(*src, *rev, bundle.Signing{KeyID: *keyID, Scope: *scope}, *key, *out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mkbundle:", err)
		return 1
	}
	return 0
}

func build(src, rev string, sig bundle.Signing, keyFile, out string) error {
	b, err := bundle.Build(src, rev)
	if err != nil {
		return err
	}
	if keyFile != "" {
		if sig.KeyPEM, err = os.ReadFile(keyFile); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, b, sig); err != nil {
		return err
	}
	// Not in place: the rig's publish copies it atomically.
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func genKey(prefix string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(prefix+".pem", priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(prefix+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}
