package deliver

import "pixelrelay/config"

// Password is the upstream account's password as delivery uses it
// ($PIXELRELAY_UPSTREAM_PASSWORD, password, or password_file's content):
// the Sent folder signs in to IMAP with the same one.
func Password(u config.Upstream) (string, error) { return password(u) }
