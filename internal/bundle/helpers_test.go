package bundle

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// keyPair is a PEM RSA key pair for signing tests.
type keyPair struct{ priv, pub []byte }

var (
	keysOnce sync.Once
	keyGood  keyPair
	keyEvil  keyPair
)

// testKeys returns two key pairs, made once per test binary (2048-bit RSA
// takes a noticeable fraction of a second).
func testKeys(t testing.TB) (good, evil keyPair) {
	t.Helper()
	keysOnce.Do(func() {
		keyGood, keyEvil = mustKeyPair(t), mustKeyPair(t)
	})
	return keyGood, keyEvil
}

func mustKeyPair(t testing.TB) keyPair {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		priv: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pub:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	}
}

// verifyWith is a Verification trusting kp under key id "ka".
func verifyWith(kp keyPair) Verification {
	return Verification{Keys: []Key{{ID: "ka", PEM: kp.pub}}}
}

// Source files of a test bundle: a main rules file, a drop-in with a
// comment and odd spacing (bytes must survive exactly), and a policy.
const (
	rulesMain  = "allow:\n  users: [postmaster@example.com]\nrules:\n  - name: block-net\n    networks: [198.51.100.0/24]\n    expires: 2030-01-01T00:00:00Z\n"
	rulesDrop  = "# drop-in, comment kept\nrules:\n  - name: block-eve   # trailing comment\n    users: [eve@example.com]\n"
	policyRego = "package kickagent\n\nimport rego.v1\n\ndecisions contains d if {\n\tsome s in input.sessions\n\ts.user == \"mallory\"\n\td := {\"id\": s.id, \"rule\": \"rego-mallory\"}\n}\n"
)

// mustSrcDir writes a source directory with extra rules appended to the
// drop-in (to vary contents and size) and returns it.
func mustSrcDir(t testing.TB, extra string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"rules/00-main.yaml":    rulesMain,
		"rules/10-block.yaml":   rulesDrop + extra,
		"policy/kickagent.rego": policyRego,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustBundle builds src as revision rev, signed with priv (nil: unsigned).
func mustBundle(t testing.TB, src, rev string, priv []byte) []byte {
	t.Helper()
	b, err := Build(src, rev)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, b, Signing{KeyPEM: priv, KeyID: "ka"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
