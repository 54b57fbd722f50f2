package sentfolder

import (
	"time"

	"pixelrelay/config"
	"pixelrelay/relay/deliver"
	"pixelrelay/relay/oauth"
)

// FromConfig returns the IMAP settings of the account called name, and
// false when its Sent folder is off (sent_folder "off", or "auto" with a
// provider not known to file sent mail) or there is no such account.
func FromConfig(cfg *config.Config, name string) (Account, bool) {
	if name == "" {
		name = config.DefaultAccount
	}
	a, ok := cfg.Account(name)
	if !ok || !a.SentFolderOn() || a.IMAP() == "" {
		return Account{}, false
	}
	acct := Account{Name: a.Name, URL: a.IMAP(), TLS: a.TLS, CAFile: a.CAFile, Username: a.Username}
	if a.Auth == "oauth" {
		acct.Token = oauth.For(oauth.FromConfig(cfg.DataDir, a))
		return acct, true
	}
	// A password that cannot be read fails the sign-in with the reason,
	// as it fails delivery.
	acct.Password, acct.Err = deliver.Password(a)
	return acct, true
}

// ScheduleFromConfig follows the queue's retry schedule: min_retry
// doubled up to max_retry, for a day (or queue.max_age when shorter); the
// looks for copies not filed yet at min_retry, then 2, 4 and 8 times it
// (at most max_retry).
func ScheduleFromConfig(cfg *config.Config) Schedule {
	lo, hi := time.Duration(cfg.Queue.MinRetry), time.Duration(cfg.Queue.MaxRetry)
	s := Schedule{MinRetry: lo, MaxRetry: hi, MaxAge: min(24*time.Hour, time.Duration(cfg.Queue.MaxAge))}
	for _, f := range []time.Duration{1, 2, 4, 8} {
		s.Looks = append(s.Looks, min(lo*f, hi))
	}
	return s
}
