// Package metrics is pixelrelay's Prometheus instrumentation: one private
// registry (never the global one) holding every pixelrelay_* metric, and
// small methods the relay and the tracker call where things happen. A nil
// *Metrics is valid and records nothing, so tests and tools that do not
// care pass nil.
//
// Labels carry no personal data: SMTP reply codes, delivery results,
// account names from the config, pixel and click outcomes and classes
// (bot types). Counting is a few atomic adds; the pixel and click
// handlers touch only pre-resolved counters.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics holds the collectors. Make it with New.
type Metrics struct {
	reg *prometheus.Registry

	smtpSessions prometheus.Counter
	smtpMessages *prometheus.CounterVec // result, code
	smtpRefused  *prometheus.CounterVec // command, code

	deliveries *prometheus.CounterVec   // result, account
	upstream   *prometheus.HistogramVec // account

	pixel       outcomes
	pixelForged prometheus.Counter
	pixelHead   prometheus.Counter

	click       outcomes
	clickForged prometheus.Counter
	clickHead   prometheus.Counter

	purges             *prometheus.CounterVec // result
	purgeDeleted       prometheus.Counter
	purgeDeletedClicks prometheus.Counter
}

// outcomes is a request counter by outcome and class whose series are
// resolved once and then only looked up (a read lock and an atomic add).
type outcomes struct {
	vec   *prometheus.CounterVec // outcome, class
	mu    sync.RWMutex
	cache map[[2]string]prometheus.Counter
}

func (o *outcomes) inc(outcome, class string) {
	key := [2]string{outcome, class}
	o.mu.RLock()
	c, ok := o.cache[key]
	o.mu.RUnlock()
	if !ok {
		c = o.vec.WithLabelValues(outcome, class)
		o.mu.Lock()
		o.cache[key] = c
		o.mu.Unlock()
	}
	c.Inc()
}

// New makes the metrics and their registry. version goes into
// pixelrelay_build_info.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	info := f.gaugeVec("build_info", "Always 1; the version label says which pixelrelay runs.", "version")
	info.WithLabelValues(version).Set(1)

	m.smtpSessions = f.counter("smtp_sessions_total", "SMTP connections accepted from mail clients.")
	m.smtpMessages = f.counterVec("smtp_messages_total",
		"Messages at the end of DATA, by result (accepted, refused) and SMTP reply code.", "result", "code")
	m.smtpRefused = f.counterVec("smtp_commands_refused_total",
		"Refused SMTP commands before DATA (mail, rcpt, auth), by reply code.", "command", "code")

	m.deliveries = f.counterVec("deliveries_total",
		"Delivery attempts of copies to the upstream, by result (sent, deferred, failed) and account.", "result", "account")
	m.upstream = f.histogramVec("upstream_seconds",
		"Time of one delivery attempt to the upstream (connect, send, reply), by account.",
		[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}, "account")

	m.pixel = f.outcomes("pixel_requests_total",
		"Pixel requests by outcome (stored, duplicate, limited, unknown, failed, forged, head) and class (human, or the machine class).")
	m.pixelForged = m.pixel.vec.WithLabelValues("forged", "")
	m.pixelHead = m.pixel.vec.WithLabelValues("head", "")

	m.click = f.outcomes("click_requests_total",
		"Click URL requests by outcome (stored, duplicate, limited, unknown, failed, forged, head) and class "+
			"(human, the machine class the open rules gave it, or honeypot for the hidden link).")
	m.clickForged = m.click.vec.WithLabelValues("forged", "")
	m.clickHead = m.click.vec.WithLabelValues("head", "")

	m.purges = f.counterVec("purge_runs_total", "Purges of old opens and clicks, by result (ok, error).", "result")
	m.purgeDeleted = f.counter("purge_deleted_opens_total", "Opens deleted by purges.")
	m.purgeDeletedClicks = f.counter("purge_deleted_clicks_total", "Clicks deleted by purges (older than the cutoff).")
	return m
}

// factory registers what it makes, with the pixelrelay_ prefix.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pixelrelay_" + name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pixelrelay_" + name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) outcomes(name, help string) outcomes {
	return outcomes{vec: f.counterVec(name, help, "outcome", "class"), cache: map[[2]string]prometheus.Counter{}}
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pixelrelay_" + name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pixelrelay_" + name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Handler serves the registry in the Prometheus text format (the caller
// checks the admin key).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the private registry, for tests and for Watch functions.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SMTPSession counts a mail client connection.
func (m *Metrics) SMTPSession() {
	if m != nil {
		m.smtpSessions.Inc()
	}
}

// SMTPMessage counts the reply at the end of DATA.
func (m *Metrics) SMTPMessage(code int) {
	if m == nil {
		return
	}
	result := "refused"
	if code/100 == 2 {
		result = "accepted"
	}
	m.smtpMessages.WithLabelValues(result, strconv.Itoa(code)).Inc()
}

// SMTPRefused counts a refused command before DATA: "mail", "rcpt" or
// "auth".
func (m *Metrics) SMTPRefused(command string, code int) {
	if m != nil {
		m.smtpRefused.WithLabelValues(command, strconv.Itoa(code)).Inc()
	}
}

// Delivery counts one delivery attempt of a copy and how long it took.
// result is the copy's state after it: sent, deferred or failed.
func (m *Metrics) Delivery(result, account string, took time.Duration) {
	if m == nil {
		return
	}
	if account == "" {
		account = "default"
	}
	m.deliveries.WithLabelValues(result, account).Inc()
	m.upstream.WithLabelValues(account).Observe(took.Seconds())
}

// Pixel counts a pixel request for a genuine token: outcome is what the
// store did with it (stored, duplicate, limited, unknown, failed), class
// "human" or the machine class.
func (m *Metrics) Pixel(outcome, class string) {
	if m != nil {
		m.pixel.inc(outcome, class)
	}
}

// PixelForged counts a pixel request whose token is not genuine.
func (m *Metrics) PixelForged() {
	if m != nil {
		m.pixelForged.Inc()
	}
}

// PixelHead counts a HEAD request of the pixel (answered, never recorded).
func (m *Metrics) PixelHead() {
	if m != nil {
		m.pixelHead.Inc()
	}
}

// Class is the class label of a pixel or click request: "human", or the
// machine class the classifier gave it ("machine" when it named none).
func Class(bot bool, botType string) string {
	switch {
	case !bot:
		return "human"
	case botType == "":
		return "machine"
	}
	return botType
}

// ClickClass is Class for a click of link n: "honeypot" for the hidden
// link (0), whatever the open rules said of it.
func ClickClass(n int, bot bool, botType string) string {
	if n == 0 {
		return "honeypot"
	}
	return Class(bot, botType)
}

// Click counts a request of a click URL whose token is genuine: outcome
// is what became of it (stored, duplicate, limited, unknown, failed),
// class "human", the machine class, or "honeypot" (the hidden link).
func (m *Metrics) Click(outcome, class string) {
	if m != nil {
		m.click.inc(outcome, class)
	}
}

// ClickForged counts a click URL request whose token is not genuine.
func (m *Metrics) ClickForged() {
	if m != nil {
		m.clickForged.Inc()
	}
}

// ClickHead counts a HEAD request of a genuine click URL (answered, never
// recorded).
func (m *Metrics) ClickHead() {
	if m != nil {
		m.clickHead.Inc()
	}
}

// Purge counts a purge run and the opens and clicks it deleted.
func (m *Metrics) Purge(deletedOpens, deletedClicks int, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.purges.WithLabelValues(result).Inc()
	m.purgeDeleted.Add(float64(deletedOpens))
	m.purgeDeletedClicks.Add(float64(deletedClicks))
}

// Value gathers the registry and returns the value of the counter or gauge
// named name (with its pixelrelay_ prefix) whose labels include every one
// of labels (name, value pairs), summed over the matching series. For
// tests and tools.
func (m *Metrics) Value(name string, labels ...string) (float64, error) {
	mfs, err := m.reg.Gather()
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if hasLabels(s.GetLabel(), labels) {
				sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
			}
		}
	}
	return sum, nil
}

func hasLabels(have []*dto.LabelPair, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range have {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
