package store

import bolt "go.etcd.io/bbolt"

// SetSentFolder sets MESSAGE's sent_folder ("pending", "replaced",
// "failed: REASON", "off") of the copies with these ids (record.Copy.ID):
// the copies of one message, whose Sent folder job reports. Ids without a
// record are skipped.
func (s *Store) SetSentFolder(ids []string, status string) error {
	// Most calls change nothing (a message whose account has the Sent
	// folder off is told "off" again): those need no write.
	change := false
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCopies)
		for _, id := range ids {
			if v := b.Get([]byte(id)); v != nil {
				c, err := decodeCopy(v)
				if err != nil {
					return err
				}
				change = change || c.SentFolder != status
			}
		}
		return nil
	})
	if err != nil || !change {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCopies)
		for _, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			c, err := decodeCopy(v)
			if err != nil {
				return err
			}
			if c.SentFolder == status {
				continue
			}
			c.SentFolder = status
			if err := b.Put([]byte(id), encodeCopy(&c)); err != nil {
				return err
			}
		}
		return nil
	})
}
