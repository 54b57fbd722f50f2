package httpd

// Abuse and access (issue 7): the admin key, hostile tokens, and floods
// from one IP and from many, against the real keyring and bbolt store.

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pixelrelay/config"
	"pixelrelay/tracker/store"
	"pixelrelay/tracker/token"
)

// TestAdminKeyRefusals: every way of presenting the admin key other than
// "Authorization: Bearer KEY" is a 401 JSON answer with no side effect,
// also when the key in it is right (in the URL, Basic auth, other headers).
func TestAdminKeyRefusals(t *testing.T) {
	t.Setenv(token.AdminKeyEnv, "")
	f := newRealFixture(t, nil)
	key := f.keys.AdminKey()
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	rows := []struct {
		name  string
		query string
		hdr   []string
		ok    bool
	}{
		{"right key", "", []string{"Authorization", "Bearer " + key}, true},
		{"scheme in lower case", "", []string{"Authorization", "bearer " + key}, true},
		{"no key", "", nil, false},
		{"wrong key", "", []string{"Authorization", "Bearer wrong"}, false},
		{"empty bearer", "", []string{"Authorization", "Bearer "}, false},
		{"key minus its last character", "", []string{"Authorization", "Bearer " + key[:len(key)-1]}, false},
		{"key plus a character", "", []string{"Authorization", "Bearer " + key + "0"}, false},
		{"key of length 1", "", []string{"Authorization", "Bearer " + key[:1]}, false},
		{"key of length 8000", "", []string{"Authorization", "Bearer " + strings.Repeat(key, 125)}, false},
		{"key in upper case", "", []string{"Authorization", "Bearer " + strings.ToUpper(key)}, false},
		{"key twice", "", []string{"Authorization", "Bearer " + key + " " + key}, false},
		{"Basic admin:KEY", "", []string{"Authorization", basic("admin:" + key)}, false},
		{"Basic KEY:", "", []string{"Authorization", basic(key + ":")}, false},
		{"Basic :KEY", "", []string{"Authorization", basic(":" + key)}, false},
		{"Basic KEY raw", "", []string{"Authorization", "Basic " + key}, false},
		{"Token scheme", "", []string{"Authorization", "Token " + key}, false},
		{"bare key", "", []string{"Authorization", key}, false},
		{"X-Admin-Key header", "", []string{"X-Admin-Key", key}, false},
		{"cookie", "", []string{"Cookie", "admin_key=" + key}, false},
		{"?key=", "key=" + key, nil, false},
		{"?admin_key=", "admin_key=" + key, nil, false},
		{"?token=", "token=" + key, nil, false},
		{"?access_token=", "access_token=" + key, nil, false},
		{"?api_key=", "api_key=" + key, nil, false},
		{"?KEY= (upper case name)", "KEY=" + key, nil, false},
		{"?key= with the right header too", "key=" + key, []string{"Authorization", "Bearer " + key}, false},
		{"?token= wrong with the right header", "token=x", []string{"Authorization", "Bearer " + key}, false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			for _, route := range []struct{ method, path string }{{"GET", "/api/status"}, {"POST", "/api/keys/rotate"}} {
				before := f.keys.Current()
				path := route.path
				if row.query != "" {
					path += "?" + row.query
				}
				resp, body := f.do(route.method, path, "cli", row.hdr...)
				if row.ok {
					if resp.StatusCode != 200 {
						t.Errorf("%s %s: %d %s", route.method, route.path, resp.StatusCode, body)
					}
					continue
				}
				var e ErrorResponse
				if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" ||
					json.Unmarshal(body, &e) != nil || e.Error == "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: %d %q %s, want a 401 JSON error", route.method, route.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				if strings.Contains(string(body), key) {
					t.Errorf("the answer echoes the key: %s", body)
				}
				if f.keys.Current() != before {
					t.Errorf("a refused rotate changed the key version")
				}
			}
		})
	}
	// PIXELRELAY_ADMIN_KEY replaces the file's key: the file's is refused.
	t.Setenv(token.AdminKeyEnv, "env-key-0123456789")
	if resp, _ := f.do("GET", "/api/status", "cli", "Authorization", "Bearer "+key); resp.StatusCode != 401 {
		t.Errorf("file key with the env override set: %d", resp.StatusCode)
	}
	if resp, _ := f.do("GET", "/api/status", "cli", "Authorization", "Bearer env-key-0123456789"); resp.StatusCode != 200 {
		t.Errorf("env key: %d", resp.StatusCode)
	}
}

// TestKeyMatches: the digest comparison answers like string equality, for
// keys of any length.
func TestKeyMatches(t *testing.T) {
	want := "3f0c5d0e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"
	rows := []struct {
		got string
		ok  bool
	}{
		{want, true},
		{want[:63], false},
		{want + "5", false},
		{"", false},
		{"x", false},
		{strings.Repeat(want, 100), false},
		{strings.ToUpper(want), false},
		{want[:62] + "b4", false},
	}
	for _, r := range rows {
		if keyMatches(r.got, want) != r.ok {
			t.Errorf("keyMatches(%.20q…, key) = %v", r.got, !r.ok)
		}
	}
}

// BenchmarkKeyMatches: the time to refuse a key does not depend on how
// its length compares with the admin key's (compare the sub-benchmarks).
func BenchmarkKeyMatches(b *testing.B) {
	want := strings.Repeat("a", 64)
	for _, got := range []string{strings.Repeat("b", 63), strings.Repeat("b", 64), strings.Repeat("a", 63) + "b", strings.Repeat("b", 65)} {
		b.Run(fmt.Sprint(len(got)), func(b *testing.B) {
			for b.Loop() {
				keyMatches(got, want)
			}
		})
	}
}

// hostileB32 is the token alphabet, to build damaged tokens.
var hostileB32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// hostileRetire removes key version v from the secrets file, as the token
// package documents, and reloads the keyring.
func hostileRetire(t *testing.T, kr *token.Keyring, v int) {
	t.Helper()
	b, err := os.ReadFile(kr.Path())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keep []any
	for _, k := range m["tracking_keys"].([]any) {
		if int(k.(map[string]any)["version"].(float64)) != v {
			keep = append(keep, k)
		}
	}
	m["tracking_keys"] = keep
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kr.Path(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kr.Reload(); err != nil {
		t.Fatal(err)
	}
}

// TestHostileTokensNeverStored: forged, damaged, over-long, foreign and
// retired tokens all get the pixel and leave no row in the database; case
// variants of a genuine token are one open (dedup).
func TestHostileTokensNeverStored(t *testing.T) {
	f := newRealFixture(t, nil)
	_, old := f.sent("old@example.com") // version 1
	if _, err := f.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	id, tok := f.sent("bob@example.com") // version 2
	hostileRetire(t, f.keys, 1)

	other, err := token.OpenKeyring(t.TempDir() + "/secrets.json")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ { // a key version this keyring never had
		other.Rotate()
	}
	_, foreign, _ := other.Mint()

	raw, err := hostileB32.DecodeString(tok)
	if err != nil || len(raw) != 30 {
		t.Fatalf("decode %q: %v", tok, err)
	}
	reenc := func(edit func(r []byte)) string {
		r := append([]byte(nil), raw...)
		edit(r)
		return hostileB32.EncodeToString(r)
	}
	oldRaw, _ := hostileB32.DecodeString(old)
	hostile := map[string]string{
		"random":                             strings.Repeat("q", token.Len),
		"genuine id, forged rest":            id + strings.Repeat("a", token.Len-len(id)),
		"genuine id, MAC zeroed":             reencTo(raw, func(r []byte) { clear(r[12:]) }),
		"MAC of the token, other id":         reenc(func(r []byte) { r[3] ^= 0x40 }),
		"version field changed":              reenc(func(r []byte) { r[11] = 1 }),
		"key of another keyring, version 7":  foreign,
		"retired version 1":                  old,
		"retired version 1, upper case":      strings.ToUpper(old),
		"retired id replayed as version 2":   reencTo(oldRaw, func(r []byte) { r[11] = 2 }),
		"token plus one character":           tok + "a",
		"token twice":                        tok + tok,
		"65 characters":                      tok + strings.Repeat("a", 17),
		"10,000 characters":                  strings.Repeat(tok, 209),
		"47 characters":                      tok[:47],
		"token with .gif inside":             tok + ".gif",
		"Kelvin sign for k":                  strings.Replace(tok[:47]+"k", "k", "\u212a", 1),
		"token with NUL":                     tok[:47] + "%00",
		"token in a query, not the path":     "x?t=" + tok,
		"token with trailing slash":          tok + "/",
		"token with dot-dot":                 tok + "/..",
		"space padded":                       "%20" + tok,
		"genuine but for one flipped letter": tok[:30] + string("abcdefghijklmnopqrstuvwxyz234567"[(strings.IndexByte("abcdefghijklmnopqrstuvwxyz234567", tok[30])+1)%32]) + tok[31:],
	}
	for bit := 0; bit < 240; bit++ {
		hostile[fmt.Sprint("bit ", bit)] = reenc(func(r []byte) { r[bit/8] ^= 1 << (bit % 8) })
	}
	served := 0
	for name, h := range hostile {
		// Byte lengths first: EqualFold folds the Kelvin sign (3 bytes)
		// to k, and "Kelvin sign for k" must be sent even when it ends
		// up in place of a k of the genuine token.
		if h == tok || (len(h) == len(tok) && strings.EqualFold(h, tok)) {
			t.Fatalf("%s: is the genuine token", name)
		}
		resp, body := f.do("GET", "/o/"+h+".gif", uaTB)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43 {
			t.Errorf("%s: %d %q %d bytes", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		served++
	}
	if n := hostileStoredOpens(t, f); n != 0 {
		t.Fatalf("%d hostile tokens stored an open", n)
	}
	// Case variants of the genuine token: one open.
	mixed := []byte(tok)
	for i := range mixed {
		if i%3 == 0 {
			mixed[i] = strings.ToUpper(string(mixed[i]))[0]
		}
	}
	// A percent-encoded letter is the same URL path (RFC 3986), so the same
	// token too.
	pct := fmt.Sprintf("%%%02X", tok[0]) + tok[1:]
	for _, v := range []string{tok, strings.ToUpper(tok), string(mixed), pct, tok} {
		resp, body := f.do("GET", "/o/"+v+".GIF", uaTB)
		checkPixel(t, resp, body, false)
	}
	if n := hostileStoredOpens(t, f); n != 1 {
		t.Errorf("5 variants of one token stored %d opens, want 1", n)
	}
	st, _ := f.st.Stats()
	if st.Copies != 2 {
		t.Errorf("%d copies in the database, want 2: a token made a copy", st.Copies)
	}
	t.Logf("%d hostile tokens served the pixel, none stored; 5 variants of a genuine one stored 1 open", served)
}

// reencTo returns raw changed by edit, base32-encoded.
func reencTo(raw []byte, edit func(r []byte)) string {
	r := append([]byte(nil), raw...)
	edit(r)
	return hostileB32.EncodeToString(r)
}

// hostileGet fetches path with the fixture's client from many goroutines;
// it returns false unless the answer is the pixel.
func hostileGet(f *realFixture, path, ua string, hdr ...string) bool {
	req, _ := http.NewRequest("GET", f.ts.URL+path, nil)
	req.Header.Set("User-Agent", ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && resp.Header.Get("Content-Type") == "image/gif" && string(body) == string(gif)
}

// TestFloodWithinLimits: a flood from one IP (also with forged
// X-Forwarded-For from an untrusted peer) and from many IPs (through a
// trusted proxy) always gets the pixel, and the database holds no more
// than ip_hourly_limit opens per IP and no duplicate.
func TestFloodWithinLimits(t *testing.T) {
	const limit, copies = 5, 8
	ips := 100
	if os.Getenv("PIXELRELAY_SOAK") == "1" {
		ips = 3000
	}
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted_proxy=%v", trusted), func(t *testing.T) {
			f := newRealFixture(t, func(c *config.Config) {
				c.Tracking.IPHourlyLimit = limit
				if trusted {
					c.HTTP.TrustedProxies = []string{"127.0.0.0/8"}
				}
			})
			var toks, ids []string
			for i := 0; i < copies; i++ {
				id, tok := f.sent(fmt.Sprintf("r%d@example.com", i))
				toks, ids = append(toks, tok), append(ids, id)
			}
			// Every IP fetches every copy twice, once in upper case.
			var failed atomic.Int64
			n := ips * copies * 2
			hostileConcurrently(n, 8, func(i int) {
				ip := fmt.Sprintf("11.%d.%d.%d", i/(copies*2)>>16&0xff, i/(copies*2)>>8&0xff, i/(copies*2)&0xff)
				tok := toks[i/2%copies]
				if i%2 == 1 {
					tok = strings.ToUpper(tok)
				}
				if !hostileGet(f, "/o/"+tok+".gif", uaTB, "X-Forwarded-For", ip) {
					failed.Add(1)
				}
			})
			f.sentPixels += n
			if failed.Load() != 0 {
				t.Errorf("%d of %d fetches did not get the pixel", failed.Load(), n)
			}
			want := limit // untrusted: every fetch is 127.0.0.1's
			if trusted {
				want = ips * limit
			}
			rows := hostileStoredOpens(t, f)
			if rows != want {
				t.Errorf("%d opens stored from %d fetches, want %d", rows, n, want)
			}
			perIP := map[string]int{}
			seen := map[string]bool{}
			for _, id := range ids {
				opens, err := f.st.Opens(store.OpenQuery{ID: id, Limit: 500})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range opens {
					perIP[o.IP]++
					k := o.TrackingID + " " + o.IP + " " + o.UserAgent
					if seen[k] {
						t.Errorf("duplicate open stored: %s", k)
					}
					seen[k] = true
				}
			}
			for ip, c := range perIP {
				if c > limit {
					t.Errorf("IP %s: %d opens stored, limit %d", ip, c, limit)
				}
			}
			if !trusted && (len(perIP) != 1 || perIP["127.0.0.1"] != limit) {
				t.Errorf("a forged X-Forwarded-For from an untrusted peer was believed: %v", perIP)
			}
			t.Logf("%d fetches from %d IPs: all got the pixel, %d opens stored", n, len(perIP), rows)
		})
	}
}

// TestSettledSetBounded: the pixel handler's cache of long-delivered copies
// stays bounded under a flood of distinct genuine ids.
func TestSettledSetBounded(t *testing.T) {
	var s settledSet
	var mu sync.Mutex
	for i := 0; i < 3*maxSettled+7; i++ {
		mu.Lock()
		s.add(fmt.Sprint("id", i))
		mu.Unlock()
		if i%1000 == 0 && len(s.m) > maxSettled {
			t.Fatalf("settled set holds %d ids, bound %d", len(s.m), maxSettled)
		}
	}
	if len(s.m) > maxSettled || !s.has(fmt.Sprint("id", 3*maxSettled+6)) {
		t.Errorf("after the flood: %d ids; the latest remembered = %v", len(s.m), s.has(fmt.Sprint("id", 3*maxSettled+6)))
	}
}
