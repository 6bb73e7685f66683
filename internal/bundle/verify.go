package bundle

import (
	"errors"
	"fmt"
	"io"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Key is one public key a bundle's signature may be made with.
type Key struct {
	ID  string // the signer's key id (the JWT's kid)
	PEM []byte // PEM public key (RSA, for RS256)
}

// Verification says which signatures a bundle must carry.
type Verification struct {
	Keys []Key
	// KeyID, when set, is the one key signatures are checked with,
	// whatever key id they name (OPA's keyid); empty: the key a signature
	// names (its kid) must be one of Keys.
	KeyID string
	// Scope, when set, must equal the signature's scope claim.
	Scope string
	// AllowUnsigned accepts bundles without signatures and is only
	// allowed with no Keys: kickagent never runs unsigned bundles by
	// accident, as anyone who can reach the bundle service's path could
	// make it kick users.
	AllowUnsigned bool
}

// config returns OPA's verification config, nil for AllowUnsigned.
func (v Verification) config() (*opabundle.VerificationConfig, error) {
	if len(v.Keys) == 0 {
		if v.AllowUnsigned {
			return nil, nil
		}
		return nil, errors.New("bundle: no verification keys (set AllowUnsigned to run unsigned bundles)")
	}
	if v.AllowUnsigned {
		return nil, errors.New("bundle: verification keys and AllowUnsigned together")
	}
	keys := map[string]*opabundle.KeyConfig{}
	for _, k := range v.Keys {
		if k.ID == "" || len(k.PEM) == 0 {
			return nil, errors.New("bundle: a verification key needs an id and a PEM public key")
		}
		keys[k.ID] = &opabundle.KeyConfig{Key: string(k.PEM), Algorithm: "RS256", Scope: v.Scope}
	}
	vc := opabundle.NewVerificationConfig(keys, v.KeyID, v.Scope, nil)
	if err := vc.ValidateAndInjectDefaults(keys); err != nil {
		return nil, fmt.Errorf("bundle: verification keys: %w", err)
	}
	return vc, nil
}

// Read reads a bundle tarball and checks its signature against v, as a
// download does. Signatures are checked file by file as the tarball is read,
// so a bundle that returns no error was signed whole by one of v's keys.
func Read(r io.Reader, v Verification) (*opabundle.Bundle, error) {
	vc, err := v.config()
	if err != nil {
		return nil, err
	}
	return read(r, vc, maxFileBytes)
}

// maxFileBytes bounds each file of a bundle (OPA's own bound is 1 GiB, a
// gzip bomb's size); rules and policies are kilobytes.
const maxFileBytes = 16 << 20

func read(r io.Reader, vc *opabundle.VerificationConfig, limit int64) (*opabundle.Bundle, error) {
	loader := opabundle.NewTarballLoaderWithBaseURL(r, "").WithSizeLimitBytes(limit)
	b, err := opabundle.NewCustomReader(loader).
		WithBundleVerificationConfig(vc).
		WithSizeLimitBytes(limit).
		Read()
	if err != nil {
		return nil, err
	}
	return &b, nil
}
