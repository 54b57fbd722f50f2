package sentfolder

import "context"

// Check signs in to the account's IMAP server and finds its mailboxes as a
// replacement would, changing nothing. A refused sign-in or a bad URL is a
// *SetupError; an account without a Sent mailbox gives ErrNoSent.
func Check(ctx context.Context, a Account) (Mailboxes, error) {
	c, err := connect(ctx, a)
	if err != nil {
		return Mailboxes{}, err
	}
	defer c.Logout()
	return findMailboxes(c)
}
