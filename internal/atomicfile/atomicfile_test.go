package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		path string
		data string
		perm os.FileMode
		ok   bool
	}{
		{"new file", filepath.Join(dir, "a"), "one", 0o600, true},
		{"replaces, new mode", filepath.Join(dir, "a"), "two", 0o644, true},
		{"missing directory", filepath.Join(dir, "no", "a"), "x", 0o600, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Write(c.path, []byte(c.data), c.perm)
			if (err == nil) != c.ok {
				t.Fatalf("Write: %v, want ok=%v", err, c.ok)
			}
			if !c.ok {
				return
			}
			got, err := os.ReadFile(c.path)
			if err != nil || string(got) != c.data {
				t.Fatalf("read %q, %v; want %q", got, err, c.data)
			}
			if fi, _ := os.Stat(c.path); fi.Mode().Perm() != c.perm {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), c.perm)
			}
		})
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
