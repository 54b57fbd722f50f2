package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
)

// The dashboard's own files: its style sheet, its script and its icon,
// embedded. Pages link them with ?v=HASH, so a browser may keep them for
// a year and still never use an old one after an upgrade.

//go:embed static
var staticFS embed.FS

type asset struct {
	body  []byte
	ctype string
	hash  string
}

var assets = loadAssets()

func loadAssets() map[string]asset {
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	out := map[string]asset{}
	entries, err := staticFS.ReadDir("static")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = asset{body: b, ctype: types[path.Ext(e.Name())], hash: hex.EncodeToString(sum[:6])}
	}
	return out
}

// staticURL is the versioned URL of a static file.
func staticURL(name string) string {
	return "/ui/static/" + name + "?v=" + assets[name].hash
}

// serveStatic answers /ui/static/NAME. No session is needed: nothing in
// these files is private.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := assets[strings.TrimPrefix(r.URL.Path, "/ui/static/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", `"`+a.hash+`"`)
	if r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == `"`+a.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(a.body)
}
