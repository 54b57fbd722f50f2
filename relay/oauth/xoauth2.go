package oauth

import (
	"github.com/emersion/go-sasl"
)

// Mechanism is the SASL name of XOAUTH2.
const Mechanism = "XOAUTH2"

// XOAUTH2 is the SASL client of Google's and Microsoft's XOAUTH2
// mechanism for user with an access token: the initial response
// "user=USER^Aauth=Bearer TOKEN^A^A". A server that refuses the token
// sends a challenge (a JSON error); the answer is an empty response, after
// which the server sends its failure reply.
func XOAUTH2(user, token string) sasl.Client {
	return &xoauth2{user: user, token: token}
}

type xoauth2 struct{ user, token string }

func (c *xoauth2) Start() (string, []byte, error) {
	return Mechanism, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }
