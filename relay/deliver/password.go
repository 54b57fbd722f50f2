package deliver

import (
	"os"

	"pixelrelay/config"
)

// Password is the account's password as delivery uses it
// ($PIXELRELAY_UPSTREAM_PASSWORD for [upstream] only, password, or
// password_file's content): the Sent folder signs in to IMAP with the same
// one.
func Password(a config.Account) (string, error) {
	env := ""
	if a.Name == config.DefaultAccount {
		env = os.Getenv(envPassword)
	}
	return password(a.Upstream, env)
}
