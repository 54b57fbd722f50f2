// Package sentfolder keeps the sender's Sent folder free of tracked copies.
//
// Gmail, Microsoft 365 / Outlook.com and iCloud file every message sent
// through their SMTP servers in the account's Sent folder, so each tracked
// copy (its recipient's pixel included) lands there, and the sender's own
// look at Sent would count as that recipient's open. Once every copy of a
// message was accepted upstream, the queue hands the message to Jobs: a
// durable job (its own directory beside the spool, the message as
// submitted kept with it until the job ends) that signs in to the
// account's IMAP server with go-imap, finds the Sent mailbox (RFC 6154
// \Sent, else by its usual names), appends the message as the client
// submitted it (Bcc kept, \Seen, its own Date as internal date) unless a
// clean copy of that Message-ID is there already (the client saved its
// own), removes every copy pixelrelay relayed (the Received header
// pixelrelay puts in front, or the tracker's pixel or click URLs in the
// text) from Sent, and every tracked one (with a pixel or rewritten links)
// from All Mail (\All, through Trash: on Gmail an expunge from All Mail
// only archives) and from Trash. The untracked recipients' copy stays in
// All Mail: on Gmail it is also the copy in the sender's own inbox when
// the sender was a recipient.
//
// Providers file asynchronously: a job that finds fewer relayed copies in
// Sent than were sent looks again a few times before it ends. Failures are
// retried with growing delays for a day; nothing waits for a job, so it
// never holds up delivery.
package sentfolder
