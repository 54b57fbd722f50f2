package main

import "errors"

// cmdFill will fill a tracker store directly; it needs tracker/store.
func cmdFill(args []string) error {
	return errors.New("not available yet")
}
