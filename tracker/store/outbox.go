package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"pixelrelay/tracker/webhook"
)

// The webhook outbox. An event is written in the same write transaction as
// what it reports (an open, a copy's new delivery state): once that is
// committed the event is too, and a crash loses neither. Each endpoint
// that takes the event gets its own entry, keyed name 0 seq(8) so that an
// endpoint's events are a prefix range in the order they were made; the
// entries of one event share its webhook-id. Entries are deleted when
// delivered, when they expire (webhook.Manager's MaxAge), when a 410
// disables their endpoint, and, for an endpoint removed from the config,
// by PurgeWebhookEvents.

// hookSet is the configured endpoints and the function that wakes their
// workers; SetWebhooks replaces it as a whole.
type hookSet struct {
	targets []webhook.Target
	wake    func(names []string)
}

// SetWebhooks sets the endpoints that receive events (webhook.Outbox).
// Events committed from then on are written for them.
func (s *Store) SetWebhooks(targets []webhook.Target, wake func(names []string)) {
	if len(targets) == 0 {
		s.hooks.Store(nil)
		return
	}
	s.hooks.Store(&hookSet{targets: append([]webhook.Target(nil), targets...), wake: wake})
}

// hookEvents writes the webhook events of one write transaction. A nil
// *hookEvents (no endpoints configured) writes nothing.
type hookEvents struct {
	set           *hookSet
	outbox, state *bolt.Bucket
	enabled       []*webhook.Target // nil until first needed
	checked       bool
	woken         map[string]bool
}

// newHookEvents returns the event writer for tx, or nil when no endpoint is
// configured.
func (s *Store) newHookEvents(tx *bolt.Tx) *hookEvents {
	set := s.hooks.Load()
	if set == nil {
		return nil
	}
	return &hookEvents{set: set, outbox: tx.Bucket(bHookOutbox), state: tx.Bucket(bHookState), woken: map[string]bool{}}
}

// emit stores one event for every enabled endpoint that takes it: typ
// happened at at; human is false for a machine open or click (endpoints
// with human_only skip those). data returns the event's "data" object; it
// is called once, and only when some endpoint takes the event. The click
// path calls it in its own transaction as the open path does.
func (e *hookEvents) emit(typ string, at time.Time, human bool, data func() ([]byte, error)) error {
	if e == nil {
		return nil
	}
	var rec []byte
	for _, t := range e.targets() {
		if !t.Takes(typ, human) {
			continue
		}
		if rec == nil {
			d, err := data()
			if err != nil {
				return fmt.Errorf("store: %s event: %w", typ, err)
			}
			body, err := eventBody(typ, at, d)
			if err != nil {
				return fmt.Errorf("store: %s event: %w", typ, err)
			}
			rec = encodeHookEvent(&webhook.Event{ID: webhook.NewID(), Type: typ, Created: at, Body: body})
		}
		seq, err := e.outbox.NextSequence()
		if err != nil {
			return err
		}
		if err := e.outbox.Put(prefixed(t.Name, appendU64(nil, seq)), rec); err != nil {
			return err
		}
		e.woken[t.Name] = true
	}
	return nil
}

// targets returns the configured endpoints that a 410 has not disabled
// (checked once per transaction).
func (e *hookEvents) targets() []*webhook.Target {
	if e.checked {
		return e.enabled
	}
	e.checked = true
	for i := range e.set.targets {
		t := &e.set.targets[i]
		if st, err := decodeHookState(e.state.Get([]byte(t.Name))); err == nil && st.Disabled && st.URL == t.URL {
			continue
		}
		e.enabled = append(e.enabled, t)
	}
	return e.enabled
}

// wake tells the workers of the endpoints that got events; call it after
// the transaction committed.
func (e *hookEvents) wake() {
	if e == nil || len(e.woken) == 0 || e.set.wake == nil {
		return
	}
	names := make([]string, 0, len(e.woken))
	for n := range e.woken {
		names = append(names, n)
	}
	sort.Strings(names)
	e.set.wake(names)
}

// eventBody is the JSON that is signed and sent:
// {"type":…,"timestamp":…,"data":…}. typ is one of webhook's constants
// (plain ASCII) and data is JSON from marshal, so the pieces are joined
// as they are.
func eventBody(typ string, at time.Time, data []byte) ([]byte, error) {
	b := make([]byte, 0, len(data)+len(typ)+64)
	b = append(append(append(b, `{"type":"`...), typ...), `","timestamp":`...)
	b = at.UTC().AppendFormat(append(b, '"'), time.RFC3339Nano)
	b = append(append(append(b, `","data":`...), data...), '}')
	return b, nil
}

// marshal is json.Marshal without HTML escaping (Message-IDs and addresses
// keep their <>, as in the admin API) and without the trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// withMessage is the data of message.opened and message.clicked: the JSON
// object of v (an OPEN or a CLICK struct) followed by the fields of its
// MESSAGE that v does not have, in MESSAGE's order.
func withMessage(v any, m Message) ([]byte, error) {
	r := restOf(reflect.TypeOf(v))
	rest := reflect.New(r.typ).Elem()
	mv := reflect.ValueOf(m)
	for j, i := range r.idx {
		rest.Field(j).Set(mv.Field(i))
	}
	head, err := marshal(v)
	if err != nil {
		return nil, err
	}
	tail, err := marshal(rest.Interface())
	if err != nil || len(tail) <= 2 {
		return head, err
	}
	if len(head) <= 2 {
		return tail, nil
	}
	return append(append(head[:len(head)-1], ','), tail[1:]...), nil
}

// restType is, for one OPEN or CLICK type, a struct type holding the
// MESSAGE fields that type lacks (same names and tags), and the index in
// Message of each of its fields. Built once per type by reflection, so
// other MESSAGE fields (added later) come along by themselves.
type restType struct {
	typ reflect.Type
	idx []int
}

var restTypes sync.Map // reflect.Type -> *restType

func restOf(t reflect.Type) *restType {
	if r, ok := restTypes.Load(t); ok {
		return r.(*restType)
	}
	have := map[string]bool{}
	for i := range t.NumField() {
		have[jsonName(t.Field(i))] = true
	}
	mt := reflect.TypeFor[Message]()
	r := &restType{}
	var fields []reflect.StructField
	for i := range mt.NumField() {
		f := mt.Field(i)
		if name := jsonName(f); name == "" || have[name] {
			continue
		}
		fields = append(fields, reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag})
		r.idx = append(r.idx, i)
	}
	r.typ = reflect.StructOf(fields)
	restTypes.Store(t, r)
	return r
}

// jsonName is the JSON key of a struct field; "" for one JSON leaves out.
func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// PendingEvents returns up to n of the endpoint's waiting events, oldest
// first (webhook.Outbox).
func (s *Store) PendingEvents(name string, n int) ([]webhook.Event, error) {
	var out []webhook.Event
	err := s.view(func(tx *bolt.Tx) error {
		prefix := prefixed(name)
		c := tx.Bucket(bHookOutbox).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < n; k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			ev, err := decodeHookEvent(v)
			if err != nil {
				return fmt.Errorf("store: webhook event %s/%d: %w", name, beU64(k[len(prefix):]), err)
			}
			ev.Seq = beU64(k[len(prefix):])
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// WebhookState returns an endpoint's state (webhook.Outbox).
func (s *Store) WebhookState(name string) (webhook.State, error) {
	var st webhook.State
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		st, err = decodeHookState(tx.Bucket(bHookState).Get([]byte(name)))
		return err
	})
	return st, err
}

// RecordWebhook saves a round of attempts (webhook.Outbox).
func (s *Store) RecordWebhook(name string, done []uint64, expireBefore time.Time, st webhook.State) (int, error) {
	expired := 0
	err := s.update(func(tx *bolt.Tx) error {
		out := tx.Bucket(bHookOutbox)
		for _, seq := range done {
			if err := out.Delete(prefixed(name, appendU64(nil, seq))); err != nil {
				return err
			}
		}
		expired = 0
		if !expireBefore.IsZero() {
			n, err := deleteEvents(out, name, -1, func(ev *webhook.Event) bool { return ev.Created.Before(expireBefore) })
			if err != nil {
				return err
			}
			expired = n
		}
		st.Expired += uint64(expired)
		return tx.Bucket(bHookState).Put([]byte(name), encodeHookState(&st))
	})
	return expired, err
}

// DisableWebhook saves st and drops the endpoint's waiting events
// (webhook.Outbox), in chunks of purgeChunk per transaction. The state
// goes with the first chunk (a usual backlog is one chunk): from then on
// no event is added for the endpoint.
func (s *Store) DisableWebhook(name string, st webhook.State) (int, error) {
	st.Disabled = true
	dropped := 0
	for first := true; ; first = false {
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			var err error
			if n, err = deleteEvents(tx.Bucket(bHookOutbox), name, purgeChunk, nil); err != nil {
				return err
			}
			cur := st
			if !first {
				if cur, err = decodeHookState(tx.Bucket(bHookState).Get([]byte(name))); err != nil {
					return err
				}
			}
			cur.Dropped += uint64(n)
			return tx.Bucket(bHookState).Put([]byte(name), encodeHookState(&cur))
		})
		if err != nil {
			return dropped, err
		}
		dropped += n
		if n < purgeChunk {
			return dropped, nil
		}
	}
}

// deleteEvents deletes, from the start of name's events, up to max (-1:
// no limit) events for which keep returns true (nil: every event),
// stopping at the first it returns false for. It returns how many it
// deleted.
func deleteEvents(out *bolt.Bucket, name string, max int, del func(*webhook.Event) bool) (int, error) {
	prefix := prefixed(name)
	c := out.Cursor()
	var keys [][]byte
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && (max < 0 || len(keys) < max); k, v = c.Next() {
		if del != nil {
			ev, err := decodeHookEvent(v)
			if err == nil && !del(&ev) {
				break
			}
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := out.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// WebhookBacklog counts an endpoint's waiting events (webhook.Outbox).
func (s *Store) WebhookBacklog(name string) (n int, oldest time.Time, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		prefix := prefixed(name)
		c := tx.Bucket(bHookOutbox).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n == 0 {
				if ev, err := decodeHookEvent(v); err == nil {
					oldest = ev.Created
				}
			}
			n++
		}
		return nil
	})
	return n, oldest, err
}

// PurgeWebhookEvents deletes old events of endpoints no longer configured
// (webhook.Outbox), in chunks.
func (s *Store) PurgeWebhookEvents(before time.Time, keep func(name string) bool) (int, error) {
	total := 0
	for {
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			out := tx.Bucket(bHookOutbox)
			var keys [][]byte
			c := out.Cursor()
			for k, v := c.First(); k != nil && len(keys) < purgeChunk; k, v = c.Next() {
				i := bytes.IndexByte(k, 0)
				if i >= 0 && keep(string(k[:i])) {
					// Skip the rest of a kept endpoint's events.
					k, _ = c.Seek(prefixEnd(k[:i+1]))
					if k == nil {
						break
					}
					k, v = c.Prev()
					continue
				}
				if ev, err := decodeHookEvent(v); i >= 0 && err == nil && !ev.Created.Before(before) {
					continue
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := out.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil || n < purgeChunk {
			return total, err
		}
	}
}
