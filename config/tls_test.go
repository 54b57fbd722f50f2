package config

import (
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientTLS(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(good, block, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, caFile, wantErr string
		roots                 bool
	}{
		{"no ca_file: system roots", "", "", false},
		{"ca_file with a certificate", good, "", true},
		{"missing ca_file", filepath.Join(dir, "nope.pem"), "ca_file: ", false},
		{"ca_file without PEM", junk, "no PEM certificate found", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc, err := ClientTLS("mail.example", c.caFile)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), "ca_file") {
					t.Fatalf("err = %v, want one naming ca_file with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.ServerName != "mail.example" || tc.MinVersion == 0 || (tc.RootCAs != nil) != c.roots {
				t.Fatalf("config = %+v", tc)
			}
		})
	}
}
