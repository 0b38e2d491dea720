package kafkaconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkaconn"
)

// Mistakes in connection settings must fail at startup with the flag to fix,
// not as a handshake error minutes later.
func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := []string{"localhost:9092"}
	cases := []struct {
		name string
		cfg  kafkaconn.Config
		want []string // substrings of the error; none means valid
	}{
		{"plaintext", kafkaconn.Config{Brokers: b}, nil},
		{"no brokers", kafkaconn.Config{}, []string{"--brokers"}},
		{"missing CA file", kafkaconn.Config{Brokers: b, TLS: true, TLSCAFile: filepath.Join(dir, "nope.pem")}, []string{"--tls-ca", "nope.pem"}},
		{"CA file without certificates", kafkaconn.Config{Brokers: b, TLSCAFile: notPEM}, []string{"--tls-ca", "no PEM certificate"}},
		{"cert without key", kafkaconn.Config{Brokers: b, TLSCertFile: notPEM}, []string{"--tls-cert given without --tls-key"}},
		{"key without cert", kafkaconn.Config{Brokers: b, TLSKeyFile: notPEM}, []string{"--tls-key given without --tls-cert"}},
		{"unknown mechanism", kafkaconn.Config{Brokers: b, SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"}, []string{"--sasl-mechanism", `"GSSAPI"`}},
		{"user without mechanism", kafkaconn.Config{Brokers: b, SASLUser: "u"}, []string{"--sasl-user", "without --sasl-mechanism"}},
		{"mechanism without user", kafkaconn.Config{Brokers: b, SASLMechanism: "PLAIN", SASLPassword: "p"}, []string{"--sasl-user: required"}},
		{"mechanism without password", kafkaconn.Config{Brokers: b, SASLMechanism: "scram-sha-512", SASLUser: "u"}, []string{"SLUICE_SASL_PASSWORD"}},
		{"lower-case mechanism", kafkaconn.Config{Brokers: b, SASLMechanism: "scram-sha-256", SASLUser: "u", SASLPassword: "p"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.cfg.Options()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The password must not leak through any way a Config gets printed or logged.
func TestConfigNeverShowsPassword(t *testing.T) {
	c := kafkaconn.Config{Brokers: []string{"b:9092"}, SASLMechanism: "PLAIN", SASLUser: "alice", SASLPassword: "s3cr3t-pw"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), c.LogValue().String()} {
		if strings.Contains(s, "s3cr3t-pw") {
			t.Errorf("password shown in %q", s)
		}
	}
}

func ping(t *testing.T, cfg kafkaconn.Config) error {
	t.Helper()
	opts, err := cfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// Each mechanism authenticates against a cluster that requires SASL, and a
// wrong password is refused (so the test would notice SASL being skipped).
func TestSASL(t *testing.T) {
	for _, mech := range []string{kafkaconn.MechanismPlain, kafkaconn.MechanismSCRAMSHA256, kafkaconn.MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "alice", "right-pw"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := kafkaconn.Config{Brokers: c.ListenAddrs(), SASLMechanism: mech, SASLUser: "alice", SASLPassword: "right-pw", ClientID: "kafkaconn-test"}
			if err := ping(t, cfg); err != nil {
				t.Fatalf("ping with the right password: %v", err)
			}
			cfg.SASLPassword = "wrong-pw"
			if err := ping(t, cfg); err == nil {
				t.Fatal("ping with a wrong password succeeded")
			}
		})
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns it
// and the path of its PEM file (which doubles as the CA file).
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

// A TLS cluster is reachable with its CA given (--tls-ca) or with
// verification off (--tls-insecure), and not with the system roots alone,
// which proves the CA file is what made the first connection work.
func TestTLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	if err := ping(t, kafkaconn.Config{Brokers: brokers, TLS: true, TLSCAFile: caFile}); err != nil {
		t.Fatalf("with --tls-ca: %v", err)
	}
	if err := ping(t, kafkaconn.Config{Brokers: brokers, TLS: true, TLSInsecureSkipVerify: true}); err != nil {
		t.Fatalf("with --tls-insecure: %v", err)
	}
	if err := ping(t, kafkaconn.Config{Brokers: brokers, TLS: true}); err == nil {
		t.Fatal("connected to a self-signed cluster without its CA")
	}
}
