package smtpd

import (
	"crypto/subtle"
	"errors"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"pixelrelay/config"
)

var errBadCredentials = errors.New("bad username or password")

// dummyHashes holds, per bcrypt cost, a hash that is compared against when
// the user does not exist, so that an unknown user costs the same time as a
// wrong password.
var dummyHashes sync.Map // int → []byte

func dummyHash(cost int) []byte {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("pixelrelay-no-such-user"), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword([]byte("pixelrelay-no-such-user"), bcrypt.DefaultCost)
	}
	dummyHashes.Store(cost, h)
	return h
}

// usersCost is the bcrypt cost of the first configured user's hash.
func usersCost(users []config.User) int {
	for _, u := range users {
		if c, err := bcrypt.Cost([]byte(userHash(u))); err == nil {
			return c
		}
	}
	return bcrypt.DefaultCost
}

// checkUser verifies user and pass against users (bcrypt hashes).
func checkUser(users []config.User, user, pass string) error {
	var hash []byte
	found := false
	for _, u := range users {
		if subtle.ConstantTimeCompare([]byte(u.Username), []byte(user)) == 1 {
			hash = []byte(userHash(u))
			found = true
			break
		}
	}
	if !found {
		hash = dummyHash(usersCost(users))
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	if !found || err != nil {
		return errBadCredentials
	}
	return nil
}

// userHash is the user's bcrypt hash; the config loader normally fills
// PasswordHash from password_file, this reads the file if it did not.
func userHash(u config.User) string {
	if u.PasswordHash != "" || u.PasswordFile == "" {
		return u.PasswordHash
	}
	b, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loginServer is the server side of the (obsolete but widely used) SASL
// LOGIN mechanism, which go-sasl only implements for clients: the server
// asks "Username:" then "Password:".
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0: // AUTH LOGIN, maybe with the username as initial response
		if resp == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
