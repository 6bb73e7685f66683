// Command mkbundle makes RSA key pairs for the bundle tests and the nginx
// rig (bundles themselves are built by "kickagent bundle build"):
//
//	mkbundle -genkey PREFIX     writes PREFIX.pem (private) and PREFIX.pub
//
// It stands in for openssl, which a minimal Debian does not have.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkbundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	genkey := fs.String("genkey", "", "write an RSA key pair PREFIX.pem and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *genkey == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mkbundle: usage: mkbundle -genkey PREFIX (build bundles with kickagent bundle build)")
		return 2
	}
	if err := genKey(*genkey); err != nil {
		fmt.Fprintln(stderr, "mkbundle:", err)
		return 1
	}
	return 0
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
