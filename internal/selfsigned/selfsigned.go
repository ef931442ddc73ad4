// Package selfsigned makes, once per process, a self-signed certificate
// for 127.0.0.1 and localhost (ECDSA P-256, valid for a day) and the
// server and client TLS configurations around it, for the tls+tcp, wss and
// quic transports in ferry bench and ferry stress.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"
)

var (
	once     sync.Once
	srv, cli *tls.Config
	err      error
)

// Configs returns the server configuration (holding the certificate) and
// a client configuration that trusts only it. Callers must not modify
// them; Clone first.
func Configs() (server, client *tls.Config, _ error) {
	once.Do(func() { srv, cli, err = make() })
	return srv, cli, err
}

// Client returns a client configuration that trusts only the certificate
// der (a far side's, sent over some other channel).
func Client(der []byte) (*tls.Config, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, nil
}

func make() (*tls.Config, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:              []string{"localhost", "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cli, err := Client(der)
	if err != nil {
		return nil, nil, err
	}
	srv := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return srv, cli, nil
}
