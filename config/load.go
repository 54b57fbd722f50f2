package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Load reads and decodes the config file at path over the defaults. An
// empty path means the built-in defaults (plus $PIXELRELAY_UPSTREAM_PASSWORD).
// Load does not validate; see Validate and LoadValid. A decode failure is
// returned as Problems (unknown keys, wrong types, unreadable secret files),
// or a plain error when the file cannot be read.
func Load(path string) (*Config, error) {
	if path == "" {
		c := Default()
		var ps Problems
		c.resolveSecrets(&ps)
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return Parse(data, path)
}

// LoadValid is Load followed by Validate. Its error lists every problem
// found, decode and validation problems together (a Problems value), so
// `config check` can print them all at once.
func LoadValid(path string) (*Config, error) {
	if path == "" {
		c, _ := Load("")
		return c, orNil(c.Validate())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return ParseValid(data, path)
}

// ParseValid is Parse followed by Validate, reporting every problem at once.
func ParseValid(data []byte, path string) (*Config, error) {
	c, ps := parse(data, path)
	if c == nil { // syntax error: nothing else can be checked
		return nil, ps
	}
	ps = append(ps, c.validate(ps)...)
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

// Parse decodes TOML data over the defaults. path is the file it came
// from: relative paths inside it resolve against path's directory (the
// working directory when path is ""), and it is recorded in Config.Path.
// Secrets are resolved: upstream.password_file is read (trailing newline
// trimmed) unless $PIXELRELAY_UPSTREAM_PASSWORD is set, and each
// smtp.users[].password_file is read into PasswordHash. The error, if any,
// is a Problems value naming each offending key. Parse does not validate.
func Parse(data []byte, path string) (*Config, error) {
	c, ps := parse(data, path)
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

// parse returns the decoded config and the decode problems. The config is
// nil only when the TOML itself cannot be parsed.
func parse(data []byte, path string) (*Config, Problems) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, Problems{syntaxProblem(err, data)}
	}
	c := Default()
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	c.Path = path
	var ps Problems
	decodeStruct(reflect.ValueOf(c).Elem(), raw, "", &ps)
	c.liftURLCredentials(&ps)
	c.normalize()
	c.resolvePaths(filepath.Dir(path))
	c.resolveSecrets(&ps)
	return c, ps
}

func syntaxProblem(err error, data []byte) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, col := errorPlace(pe.Position, data)
		return Problem{Key: pe.LastKey, Reason: fmt.Sprintf("TOML syntax error at line %d, column %d: %s",
			line, col, pe.Message)}
	}
	return Problem{Reason: "TOML syntax error: " + err.Error()}
}

// errorPlace is the line and column (1-based) of a parse error, counted
// from its byte offset in data. The parser's own line number is one too far
// when the offending byte is the newline that ends a line (a table header
// or a value cut short): it has already counted that newline.
func errorPlace(p toml.Position, data []byte) (line, col int) {
	if p.Start < 0 || p.Start > len(data) {
		return p.Line, p.Col
	}
	before := data[:p.Start]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return bytes.Count(before, []byte{'\n'}) + 1, utf8.RuneCount(before[lineStart:]) + 1
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// decodeStruct sets the fields of v (a struct) from a TOML table. Every
// unknown key and every value of the wrong type becomes a Problem; the
// field then keeps its default.
func decodeStruct(v reflect.Value, table map[string]any, prefix string, ps *Problems) {
	known := map[string]bool{}
	var names []string
	for _, f := range tomlFields(v.Type()) {
		names = append(names, f.name)
		known[f.name] = true
		if val, ok := table[f.name]; ok {
			decodeValue(v.FieldByIndex(f.index), val, prefix+f.name, ps)
		}
	}
	var unknown []string
	for k := range table {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		reason := "unknown key"
		if s := Closest(k, names); s != "" {
			reason += fmt.Sprintf("; did you mean %q?", s)
		}
		*ps = append(*ps, Problem{Key: prefix + k, Reason: reason})
	}
}

// tomlField is one key of a TOML table and the struct field it sets.
type tomlField struct {
	name  string
	index []int
}

// tomlFields lists the keys of struct type t; the fields of an embedded
// struct (Account's Upstream) are keys of the same table.
func tomlFields(t reflect.Type) []tomlField {
	var out []tomlField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, sub := range tomlFields(f.Type) {
				out = append(out, tomlField{sub.name, append([]int{i}, sub.index...)})
			}
			continue
		}
		if name := tomlName(f); name != "" {
			out = append(out, tomlField{name, []int{i}})
		}
	}
	return out
}

func tomlName(f reflect.StructField) string {
	tag := f.Tag.Get("toml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	return name
}

// decodeValue sets v from one TOML value, checking its type.
func decodeValue(v reflect.Value, val any, key string, ps *Problems) {
	bad := func(want string) {
		*ps = append(*ps, Problem{Key: key, Reason: fmt.Sprintf("must be %s, not %s", want, tomlType(val))})
	}
	switch {
	case v.Type() == durationType:
		s, ok := val.(string)
		if !ok {
			bad(`a duration string like "90m" or "90d"`)
			return
		}
		d, err := ParseDuration(s)
		if err != nil {
			*ps = append(*ps, Problem{Key: key, Reason: err.Error()})
			return
		}
		v.SetInt(int64(d))
	case v.Type() == sizeType:
		decodeSize(v, val, key, ps, bad)
	case v.Kind() == reflect.String:
		s, ok := val.(string)
		if !ok {
			bad("a string")
			return
		}
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			bad("true or false")
			return
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, ok := val.(int64)
		if !ok {
			bad("an integer")
			return
		}
		v.SetInt(n)
	case v.Kind() == reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			bad("a table")
			return
		}
		decodeStruct(v, m, key+".", ps)
	case v.Kind() == reflect.Slice:
		decodeSlice(v, val, key, ps, bad)
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

func decodeSize(v reflect.Value, val any, key string, ps *Problems, bad func(string)) {
	const want = `a size like "35MB" or a whole number of bytes`
	switch x := val.(type) {
	case int64:
		if x < 0 {
			*ps = append(*ps, Problem{Key: key, Reason: "must not be negative"})
			return
		}
		v.SetInt(x)
	case string:
		z, err := ParseSize(x)
		if err != nil {
			*ps = append(*ps, Problem{Key: key, Reason: err.Error()})
			return
		}
		v.SetInt(int64(z))
	default:
		bad(want)
	}
}

// decodeSlice handles arrays of strings and arrays of tables. A value in
// the file replaces the default list as a whole.
func decodeSlice(v reflect.Value, val any, key string, ps *Problems, bad func(string)) {
	var items []any
	switch x := val.(type) {
	case []any:
		items = x
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	default:
		if v.Type().Elem().Kind() == reflect.Struct {
			bad("an array of tables ([[" + key + "]])")
		} else {
			bad("an array")
		}
		return
	}
	out := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		if d, ok := out.Index(i).Addr().Interface().(defaulter); ok {
			d.setDefaults()
		}
		decodeValue(out.Index(i), item, fmt.Sprintf("%s[%d]", key, i), ps)
	}
	v.Set(out)
}

// defaulter is an array-of-tables element with defaults of its own
// (Webhook's human_only is true unless the block says otherwise).
type defaulter interface{ setDefaults() }

// tomlType names the TOML type of a decoded value for error messages.
func tomlType(val any) string {
	switch val.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	default:
		return "a date/time"
	}
}

// Closest returns the name in names within edit distance 2 of k
// (case-insensitive), if any: the suggestion for a typo.
func Closest(k string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(k), n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// liftURLCredentials moves credentials written into upstream.url
// ("smtp://user:pass@host:587") into Username and Password, so that the URL
// itself never carries a secret.
func (c *Config) liftURLCredentials(ps *Problems) {
	liftURLCredentials(&c.Upstream, "upstream", ps)
	for i := range c.Named {
		liftURLCredentials(&c.Named[i].Upstream, fmt.Sprintf("accounts[%d]", i), ps)
	}
}

func liftURLCredentials(up *Upstream, prefix string, ps *Problems) {
	u, err := url.Parse(up.URL)
	if err != nil || u.User == nil {
		return
	}
	if up.Username != "" || up.Password != "" || up.PasswordFile != "" {
		*ps = append(*ps, Problem{Key: prefix + ".url", Reason: "has credentials, and " + prefix + ".username or a password is set too; use one or the other"})
		return
	}
	up.Username = u.User.Username()
	up.Password, _ = u.User.Password()
	u.User = nil
	up.URL = u.String()
}

// normalize trims and lowercases values that are compared case-insensitively.
func (c *Config) normalize() {
	c.Tracking.BaseURL = strings.TrimRight(strings.TrimSpace(c.Tracking.BaseURL), "/")
	c.normalizeSplit()
	ex := make([]string, len(c.Tracking.Exclude))
	for i, e := range c.Tracking.Exclude {
		ex[i] = strings.ToLower(strings.TrimSpace(e))
	}
	if c.Tracking.Exclude != nil {
		c.Tracking.Exclude = ex
	}
	c.normalizeAccounts()
}

// resolvePaths expands a leading ~ and makes relative file names absolute
// against dir, the config file's directory.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{
		&c.DataDir, &c.SMTP.TLSCert, &c.SMTP.TLSKey, &c.Upstream.PasswordFile,
		&c.Upstream.CAFile, &c.Tracking.AppleRangesFile, &c.Tracking.NetworksFile,
		&c.Upstream.OAuthClientSecretFile, &c.Tracker.RemoteKeyFile,
	} {
		*p = resolvePath(*p, dir)
	}
	for i := range c.Named {
		up := &c.Named[i].Upstream
		for _, p := range []*string{&up.PasswordFile, &up.CAFile, &up.OAuthClientSecretFile} {
			*p = resolvePath(*p, dir)
		}
	}
	for i := range c.SMTP.Users {
		c.SMTP.Users[i].PasswordFile = resolvePath(c.SMTP.Users[i].PasswordFile, dir)
	}
	for i := range c.Webhooks {
		c.Webhooks[i].SecretFile = resolvePath(c.Webhooks[i].SecretFile, dir)
	}
}

func resolvePath(p, dir string) string {
	if p == "" {
		return ""
	}
	p = expandHome(p)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// resolveSecrets reads password files and applies the environment override.
func (c *Config) resolveSecrets(ps *Problems) {
	if env := os.Getenv(EnvUpstreamPassword); env != "" {
		c.Upstream.Password = env
	} else {
		readSecretKey(&c.Upstream.Password, c.Upstream.PasswordFile, "upstream.password", ps)
	}
	readSecretKey(&c.Upstream.OAuthClientSecret, c.Upstream.OAuthClientSecretFile, "upstream.oauth_client_secret", ps)
	for i := range c.Named {
		up := &c.Named[i].Upstream
		prefix := fmt.Sprintf("accounts[%d].", i)
		readSecretKey(&up.Password, up.PasswordFile, prefix+"password", ps)
		readSecretKey(&up.OAuthClientSecret, up.OAuthClientSecretFile, prefix+"oauth_client_secret", ps)
	}
	for i := range c.SMTP.Users {
		u := &c.SMTP.Users[i]
		if u.PasswordFile == "" {
			continue
		}
		key := fmt.Sprintf("smtp.users[%d].password_file", i)
		if u.PasswordHash != "" {
			*ps = append(*ps, Problem{Key: key, Reason: "set either password_hash or password_file, not both"})
		} else if s, err := readSecret(u.PasswordFile); err != nil {
			*ps = append(*ps, Problem{Key: key, Reason: err.Error()})
		} else {
			u.PasswordHash = strings.TrimSpace(s)
		}
	}
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		if w.SecretFile == "" {
			continue
		}
		key := fmt.Sprintf("webhooks[%d].secret_file", i)
		if w.Secret != "" {
			*ps = append(*ps, Problem{Key: key, Reason: "set either secret or secret_file, not both"})
		} else if s, err := readSecret(w.SecretFile); err != nil {
			*ps = append(*ps, Problem{Key: key, Reason: err.Error()})
		} else {
			w.Secret = strings.TrimSpace(s)
		}
	}
}

// readSecretKey sets *dst (the value of key) from file, the value of
// key+"_file", when that is set; both set is a problem.
func readSecretKey(dst *string, file, key string, ps *Problems) {
	if file == "" {
		return
	}
	if *dst != "" {
		*ps = append(*ps, Problem{Key: key + "_file", Reason: "set either " + key + " or " + key + "_file, not both"})
	} else if s, err := readSecret(file); err != nil {
		*ps = append(*ps, Problem{Key: key + "_file", Reason: err.Error()})
	} else {
		*dst = s
	}
}

// maxSecretSize bounds what is read from a secret file.
const maxSecretSize = 64 << 10

// readSecret reads a secret file, dropping one trailing newline (LF or
// CRLF). It must be a regular file (not a FIFO or device, which could
// block or never end) of at most 64KB.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read: %v", unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read: %v", unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read: %v", unwrapPath(err))
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than 64KB; is it the right file?", path)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// unwrapPath keeps the path but shortens *fs.PathError's "open x: reason".
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func orNil(ps Problems) error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}
