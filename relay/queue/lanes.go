package queue

import (
	"container/heap"
	"sort"
	"time"

	"pixelrelay/config"
)

// lanes holds the copies waiting for an attempt, one heap (soonest first)
// per account as the message's envelope names it ("" for messages spooled
// before accounts existed: the default account). Each account delivers
// up to its own connections at once, so a slow or failing account never
// holds up another's copies. Guarded by Queue.mu.
type lanes map[string]*readyHeap

func (l lanes) push(it *item) {
	h := l[it.m.env.Account]
	if h == nil {
		h = &readyHeap{}
		l[it.m.env.Account] = h
	}
	heap.Push(h, it)
}

// names returns the lanes' names in a fixed order (the map's is random).
func (l lanes) names() []string {
	out := make([]string, 0, len(l))
	for n := range l {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// accountIn is the account a message whose envelope names account uses
// under cfg: that account, or the default one when cfg has no such
// account (never had, or removed by a reload).
func accountIn(cfg *config.Config, account string) config.Account {
	if account != "" {
		if a, ok := cfg.Account(account); ok {
			return a
		}
	}
	return config.Account{Name: config.DefaultAccount, Upstream: cfg.Upstream}
}

// startLanes starts the due copies of every lane within its account's
// connections and returns how long to sleep: until the soonest copy of an
// account with a free connection is due (a finished delivery wakes the
// dispatcher anyway). The caller holds q.mu.
func (q *Queue) startLanes(cfg *config.Config, now time.Time) time.Duration {
	wait := time.Hour
	for _, name := range q.ready.names() {
		h := q.ready[name]
		acct := accountIn(cfg, name).Name
		limit := connections(cfg, acct)
		for q.active[acct] < limit && h.Len() > 0 && !(*h)[0].c.Next.After(now) {
			it := heap.Pop(h).(*item)
			it.acct = acct
			q.active[acct]++
			it.m.busy++
			q.flight.Add(1)
			go q.deliver(it, snapshot(it))
		}
		if h.Len() == 0 {
			delete(q.ready, name)
			continue
		}
		if q.active[acct] < limit {
			wait = min(wait, max((*h)[0].c.Next.Sub(now), time.Millisecond))
		}
	}
	return wait
}

// connections is the account's upstream.connections (4 when unset).
func connections(cfg *config.Config, account string) int {
	if n := accountIn(cfg, account).Connections; n > 0 {
		return n
	}
	return 4
}
