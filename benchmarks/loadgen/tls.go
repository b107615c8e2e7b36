package main

// TLS (wss://): every connection of a run over TLS when -tls-ca or
// -tls-insecure is given. Go's crypto/tls, with its defaults: TLS 1.3 when the
// server offers it, the cipher suite the server picks.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// tlsConfig is nil for plain ws://.
var tlsConfig *tls.Config

// tlsUsed records what the first TLS connection negotiated.
var tlsUsed tlsSummary

func newTLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if insecure {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// clientTLS runs the TLS handshake on nc for a server at addr (host:port;
// an IP address is checked against the certificate's IP addresses).
func clientTLS(nc net.Conn, addr string, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := tlsConfig.Clone()
	cfg.ServerName = host
	conn := tls.Client(nc, cfg)
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := conn.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	tlsUsed.record(conn.ConnectionState())
	return conn, nil
}

type tlsSummary struct {
	once    sync.Once
	version string
	cipher  string
}

func (s *tlsSummary) record(state tls.ConnectionState) {
	s.once.Do(func() {
		s.version = tlsVersionName(state.Version)
		s.cipher = tls.CipherSuiteName(state.CipherSuite)
	})
}

func (s *tlsSummary) describe() map[string]string {
	return map[string]string{"version": s.version, "cipher": s.cipher}
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}
