package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sign-in: a one-time link (minted through the admin API by `pixelrelay
// dashboard`) or the admin key typed into the form; either gives a session
// cookie. Sessions and links live in memory: a restart signs everyone out.
// Only SHA-256 digests of links and session ids are kept, so a memory dump
// does not hand out a usable cookie.

// Lifetimes.
const (
	LoginTTL   = 5 * time.Minute
	SessionTTL = 7 * 24 * time.Hour
)

// Bounds of the tables: a caller with the admin key minting links in a
// loop, or a flood of sign-ins, cannot grow memory without end.
const (
	maxLogins   = 64
	maxSessions = 1024
)

// CookieName is the session cookie's name.
const CookieName = "pixelrelay_session"

type digest [sha256.Size]byte

func digestOf(s string) digest { return sha256.Sum256([]byte(s)) }

// session is a signed-in browser.
type session struct {
	expires time.Time
	csrf    string // the token every state-changing form carries
}

// sessions holds the one-time links and the sessions.
type sessions struct {
	now func() time.Time

	mu     sync.Mutex
	logins map[digest]time.Time // link -> expiry
	live   map[digest]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, logins: map[digest]time.Time{}, live: map[digest]*session{}}
}

// randomToken returns n random bytes, URL-safe base64 (lowercase-safe is
// not needed: links are typed by nobody).
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mintLogin makes a one-time sign-in token valid for LoginTTL.
func (s *sessions) mintLogin() (string, time.Time) {
	tok := randomToken(32)
	now := s.now()
	exp := now.Add(LoginTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	sweep(s.logins, now, func(t time.Time) time.Time { return t })
	if len(s.logins) >= maxLogins {
		dropOldest(s.logins, func(t time.Time) time.Time { return t })
	}
	s.logins[digestOf(tok)] = exp
	return tok, exp
}

// useLogin consumes a one-time token: true once, within its lifetime.
func (s *sessions) useLogin(tok string) bool {
	if tok == "" || len(tok) > 128 {
		return false
	}
	d := digestOf(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.logins[d]
	delete(s.logins, d)
	return ok && s.now().Before(exp)
}

// start makes a session and returns its id (the cookie's value).
func (s *sessions) start() (id string, sess *session) {
	id = randomToken(32)
	now := s.now()
	sess = &session{expires: now.Add(SessionTTL), csrf: randomToken(24)}
	s.mu.Lock()
	defer s.mu.Unlock()
	sweep(s.live, now, func(x *session) time.Time { return x.expires })
	if len(s.live) >= maxSessions {
		dropOldest(s.live, func(x *session) time.Time { return x.expires })
	}
	s.live[digestOf(id)] = sess
	return id, sess
}

// get returns the live session with cookie value id.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" || len(id) > 128 {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.live[digestOf(id)]
	if !ok || !s.now().Before(sess.expires) {
		return nil, false
	}
	return sess, true
}

// end signs a session out.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.live, digestOf(id))
	s.mu.Unlock()
}

// sweep deletes the expired entries of m.
func sweep[V any](m map[digest]V, now time.Time, exp func(V) time.Time) {
	for k, v := range m {
		if !now.Before(exp(v)) {
			delete(m, k)
		}
	}
}

// dropOldest deletes the entry of m that expires first.
func dropOldest[V any](m map[digest]V, exp func(V) time.Time) {
	var oldest digest
	var at time.Time
	first := true
	for k, v := range m {
		if first || exp(v).Before(at) {
			oldest, at, first = k, exp(v), false
		}
	}
	delete(m, oldest)
}

// keyMatches compares a typed admin key with the real one in constant time
// (as digests, so the length leaks nothing either).
func keyMatches(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := digestOf(got), digestOf(want)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// setCookie gives the browser its session: HttpOnly, SameSite=Strict,
// limited to /ui/, Secure when the dashboard is reached over HTTPS.
func setCookie(w http.ResponseWriter, id string, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/ui/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode,
	})
}

// loginLimiter slows down guessing the admin key in the form: after
// maxFailures wrong keys within a minute, every attempt is refused until
// the minute is over. (The key is 256 random bits; this keeps the log and
// the CPU quiet rather than protecting the key.)
type loginLimiter struct {
	mu       sync.Mutex
	window   time.Time
	failures int
}

const maxFailures = 10

func (l *loginLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Minute {
		l.window, l.failures = now, 0
	}
	return l.failures < maxFailures
}

func (l *loginLimiter) fail() {
	l.mu.Lock()
	l.failures++
	l.mu.Unlock()
}
