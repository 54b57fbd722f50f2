package smtpd

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"

	"pixelrelay/config"
)

// certCache loads smtp.tls_cert/tls_key and reloads them when the paths or
// the files' modification times change (a renewed certificate is picked up
// by the next connection without a restart).
type certCache struct {
	mu   sync.Mutex
	key  string
	conf *tls.Config
}

// tlsConfig returns the STARTTLS config for cfg, or nil when no
// certificate is configured.
func (cc *certCache) tlsConfig(cfg *config.Config) (*tls.Config, error) {
	certFile, keyFile := cfg.SMTP.TLSCert, cfg.SMTP.TLSKey
	if certFile == "" || keyFile == "" {
		return nil, nil
	}
	key := certFile + "\x00" + keyFile + "\x00" + modTime(certFile) + "\x00" + modTime(keyFile)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.key == key && cc.conf != nil {
		return cc.conf, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cc.key = key
	cc.conf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return cc.conf, nil
}

func modTime(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.ModTime().UnixNano(), "/", fi.Size())
}
