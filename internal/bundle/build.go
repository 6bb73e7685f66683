package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Root is the bundle's only manifest root: data.kickagent, where package
// kickagent's rules and the rules files live.
const Root = "kickagent"

// Source directory and bundle path names (doc.go).
const (
	rulesDir  = "rules"
	policyDir = "policy"
)

// Build reads a source directory (doc.go) into a bundle with the given
// revision. Rego modules are parsed here, so a syntax error fails the build
// rather than every agent's download.
func Build(srcDir, revision string) (*opabundle.Bundle, error) {
	if revision == "" {
		return nil, errors.New("bundle: build: empty revision")
	}
	rules := map[string]any{}
	b := &opabundle.Bundle{
		Manifest: opabundle.Manifest{Revision: revision, Roots: &[]string{Root}},
		Data:     map[string]any{Root: map[string]any{rulesDir: rules}},
	}
	err := filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(srcDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if rel == rulesDir || rel == policyDir {
				return nil
			}
			return fmt.Errorf("%s: unexpected directory (want only %s/ and %s/)", rel, rulesDir, policyDir)
		}
		dir, name := path.Split(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case dir == rulesDir+"/" && isRulesName(name):
			rules[name] = string(data)
		case dir == policyDir+"/" && strings.HasSuffix(name, ".rego"):
			m, err := ast.ParseModuleWithOpts(rel, string(data), ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return err
			}
			b.Modules = append(b.Modules, opabundle.ModuleFile{URL: "/" + rel, Path: "/" + rel, RelativePath: rel, Raw: data, Parsed: m})
		default:
			return fmt.Errorf("%s: unexpected file (want %s/*.yaml|yml and %s/*.rego)", rel, rulesDir, policyDir)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: build %s: %w", srcDir, err)
	}
	slices.SortFunc(b.Modules, func(x, y opabundle.ModuleFile) int { return strings.Compare(x.Path, y.Path) })
	return b, nil
}

// isRulesName reports whether name is that of a YAML rules file, as the
// engine's drop-in directories take them.
func isRulesName(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

// Signing says how Write signs a bundle.
type Signing struct {
	// KeyPEM is the PEM RSA private key (RS256); empty writes an unsigned
	// bundle, which agents with verification keys refuse.
	KeyPEM []byte
	// KeyID names the key for the agents (the JWT's kid).
	KeyID string
	// Scope, when set, is signed as the scope claim; agents configured
	// with a scope accept only bundles signed for it.
	Scope string
}

// Write signs b as s says and writes it as a gzipped tarball.
func Write(w io.Writer, b *opabundle.Bundle, s Signing) error {
	c := *b
	c.Signatures = opabundle.SignaturesConfig{}
	if len(s.KeyPEM) > 0 {
		claims, err := claimsFile(s)
		if err != nil {
			return fmt.Errorf("bundle: sign %s: %w", c.Manifest.Revision, err)
		}
		if claims != "" {
			defer os.Remove(claims)
		}
		sc := opabundle.NewSigningConfig(string(s.KeyPEM), "RS256", claims)
		// true: sign modules by Path, as the writer below names them.
		if err := c.GenerateSignature(sc, s.KeyID, true); err != nil {
			return fmt.Errorf("bundle: sign %s: %w", c.Manifest.Revision, err)
		}
	}
	if err := opabundle.NewWriter(w).UseModulePath(true).DisableFormat(true).Write(c); err != nil {
		return fmt.Errorf("bundle: write %s: %w", c.Manifest.Revision, err)
	}
	return nil
}

// claimsFile writes the scope claim to a temporary file, the only way OPA's
// signer takes extra claims; "" when there is no scope.
func claimsFile(s Signing) (string, error) {
	if s.Scope == "" {
		return "", nil
	}
	data, err := json.Marshal(map[string]string{"scope": s.Scope, "keyid": s.KeyID})
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "kickagent-claims-*.json")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
