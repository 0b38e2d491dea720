// Package kafkaconn turns the connection settings of a real Kafka cluster
// (seed brokers, TLS, SASL, client ID) into franz-go client options, checked
// once so that a mistake is reported at startup naming the flag to fix.
//
// The password is only ever passed to the SASL mechanism; Config's String
// and LogValue methods leave it out, so logging a Config is safe.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Config accepts.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Config is how to reach a Kafka cluster. The zero value (plus Brokers) is
// a plaintext, unauthenticated connection. Error messages name the runner
// flag of each field (--tls-ca for TLSCAFile, ...).
type Config struct {
	Brokers []string
	// TLS turns on TLS; it is implied by any other TLS field.
	TLS bool
	// TLSCAFile is a PEM bundle of the CAs to trust instead of the
	// system's.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a PEM client certificate and key for
	// mutual TLS; both or neither.
	TLSCertFile, TLSKeyFile string
	// TLSInsecureSkipVerify accepts any server certificate. For tests only.
	TLSInsecureSkipVerify bool
	// SASLMechanism is "" (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (case-insensitive).
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// ClientID is the Kafka client ID (default: franz-go's).
	ClientID string
}

// tlsOn reports whether any TLS setting was given.
func (c Config) tlsOn() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSInsecureSkipVerify
}

// Options validates c and returns the client options for it. Every problem
// is reported at once, each naming its flag.
func (c Config) Options() ([]kgo.Opt, error) {
	var errs []error
	var opts []kgo.Opt
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("--brokers: no seed brokers given"))
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("--brokers: empty broker address in %q", strings.Join(c.Brokers, ",")))
			break
		}
	}
	opts = append(opts, kgo.SeedBrokers(c.Brokers...))
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.tlsOn() {
		tc, err := c.tlsConfig()
		if err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, kgo.DialTLSConfig(tc))
		}
	}
	if m, err := c.mechanism(); err != nil {
		errs = append(errs, err)
	} else if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	var errs []error
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--tls-ca: reading CA file: %w", err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("--tls-ca: %s holds no PEM certificate", c.TLSCAFile))
			}
			tc.RootCAs = pool
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--tls-cert/--tls-key: loading client certificate: %w", err))
		}
		tc.Certificates = []tls.Certificate{cert}
	case c.TLSCertFile != "":
		errs = append(errs, errors.New("--tls-cert given without --tls-key"))
	case c.TLSKeyFile != "":
		errs = append(errs, errors.New("--tls-key given without --tls-cert"))
	}
	return tc, errors.Join(errs...)
}

func (c Config) mechanism() (sasl.Mechanism, error) {
	mech := strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	if mech == "" {
		if c.SASLUser != "" || c.SASLPassword != "" {
			return nil, errors.New("--sasl-user (or SLUICE_SASL_PASSWORD) given without --sasl-mechanism; set --sasl-mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return nil, nil
	}
	var errs []error
	if c.SASLUser == "" {
		errs = append(errs, fmt.Errorf("--sasl-user: required with --sasl-mechanism %s", mech))
	}
	if c.SASLPassword == "" {
		errs = append(errs, fmt.Errorf("SLUICE_SASL_PASSWORD: required with --sasl-mechanism %s", mech))
	}
	var m sasl.Mechanism
	switch mech {
	case MechanismPlain:
		m = plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
	case MechanismSCRAMSHA256:
		m = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
	case MechanismSCRAMSHA512:
		m = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
	default:
		errs = append(errs, fmt.Errorf("--sasl-mechanism: unknown mechanism %q; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// String describes c without the password.
func (c Config) String() string {
	s := "brokers=" + strings.Join(c.Brokers, ",")
	if c.tlsOn() {
		s += " tls=on"
		if c.TLSInsecureSkipVerify {
			s += " tls-insecure=on"
		}
	}
	if c.SASLMechanism != "" {
		s += fmt.Sprintf(" sasl=%s user=%s", strings.ToUpper(c.SASLMechanism), c.SASLUser)
	}
	return s
}

// LogValue makes slog log c without the password.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("brokers", strings.Join(c.Brokers, ",")), slog.Bool("tls", c.tlsOn())}
	if c.SASLMechanism != "" {
		attrs = append(attrs, slog.String("sasl", strings.ToUpper(c.SASLMechanism)), slog.String("user", c.SASLUser))
	}
	return slog.GroupValue(attrs...)
}
