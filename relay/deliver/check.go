package deliver

import "context"

// Check signs in to the SMTP upstream the way a delivery does (connect,
// EHLO, TLS, AUTH with the password or an OAuth token) and says QUIT,
// sending nothing. Its error is a *relay.DeliveryError, as Deliver's.
func (s *SMTP) Check(ctx context.Context) error {
	st, err := s.current(s.cfg())
	if err != nil {
		return setupErr("connect", err)
	}
	pc, err := s.dial(ctx, st)
	if err != nil {
		return err
	}
	pc.quit()
	return nil
}
