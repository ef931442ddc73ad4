package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority with a server certificate
// (for 127.0.0.1, ::1 and localhost) and a client certificate, as
// tls.Configs and as PEM files (for nngcat's --cacert, --cert, --key).
type PKI struct {
	Pool           *x509.CertPool
	Server, Client tls.Certificate
	// PEM files in a temporary directory removed when the test ends.
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
}

// NewPKI makes a fresh CA and certificates (ECDSA P-256, valid for a day).
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := mustKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ferry test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &PKI{Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
		key := mustKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			// mbedTLS (NNG) matches the host against the CN and DNS
			// names only, so 127.0.0.1 is also listed as a name.
			Subject:     pkix.Name{CommonName: "127.0.0.1"},
			DNSNames:    []string{"localhost", "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			NotBefore:   time.Now().Add(-time.Hour),
			NotAfter:    time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cf := writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		kf := writePEM(t, dir, name+".key", "EC PRIVATE KEY", kder)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cf, kf
	}
	p.Server, p.ServerCertFile, p.ServerKeyFile = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.Client, p.ClientCertFile, p.ClientKeyFile = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// ServerTLS is a listener's config: the server certificate; client
// certificates are verified against the CA if sent.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Server}, ClientCAs: p.Pool, ClientAuth: tls.VerifyClientCertIfGiven}
}

// MutualTLS is a listener's config that requires a client certificate
// signed by the CA.
func (p *PKI) MutualTLS() *tls.Config {
	c := p.ServerTLS()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c
}

// ClientTLS is a dialer's config: it trusts the CA and presents the
// client certificate. The server name comes from the URL.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}}
}
