package classify

import (
	"bufio"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labelledRow is one line of testdata/labelled.tsv.
type labelledRow struct {
	line   int
	want   string
	req    Request
	source string
}

func readLabelled(t *testing.T) []labelledRow {
	t.Helper()
	f, err := os.Open("testdata/labelled.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []labelledRow
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			t.Fatalf("line %d: %d fields, want 6", n, len(f))
		}
		req := Request{UserAgent: f[4], IP: netip.MustParseAddr(f[2]), Now: sent.Add(24 * time.Hour)}
		if f[1] != "-" {
			d, err := time.ParseDuration(strings.Replace(f[1], "d", "h", 1))
			if err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			if strings.HasSuffix(f[1], "d") {
				d *= 24
			}
			req.SentAt, req.Now = sent, sent.Add(d)
		}
		if f[3] != "-" {
			for _, flag := range strings.Split(f[3], ",") {
				k, v, _ := strings.Cut(flag, "=")
				switch k {
				case "nets":
					req.Networks, _ = strconv.Atoi(v)
				case "head":
					req.HeadFirst = true
				case "self":
					req.Self = true
				case "purpose":
					req.Header = http.Header{"Sec-Purpose": {v}}
				default:
					t.Fatalf("line %d: unknown flag %q", n, flag)
				}
			}
		}
		rows = append(rows, labelledRow{line: n, want: f[0], req: req, source: f[5]})
	}
	return rows
}

// TestLabelledSet is issue 12's bar: over the labelled fetches at least
// 95% are classified right, and no person (human or a provider proxy
// acting for one) is ever called a machine.
func TestLabelledSet(t *testing.T) {
	rows := readLabelled(t)
	type tally struct{ right, total int }
	per := map[string]*tally{}
	right, lost := 0, 0
	for _, r := range rows {
		got := Classify(r.req)
		label := Label(got)
		class := r.want
		if strings.HasPrefix(class, "proxy:") {
			class = "proxy"
		}
		if per[class] == nil {
			per[class] = &tally{}
		}
		per[class].total++
		if label == r.want {
			right++
			per[class].right++
			continue
		}
		person := !strings.HasPrefix(r.want, "bot:")
		if person && got.Bot {
			lost++
			t.Errorf("line %d: a person called a machine: %s (%s); %s", r.line, label, got.Reason, r.source)
		} else {
			t.Logf("line %d: want %s, got %s (%s); %s", r.line, r.want, label, got.Reason, r.source)
		}
	}
	classes := make([]string, 0, len(per))
	for c := range per {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		t.Logf("%-14s %d/%d right", c, per[c].right, per[c].total)
	}
	pct := 100 * float64(right) / float64(len(rows))
	t.Logf("overall: %d/%d right (%.1f%%), %d people called machines", right, len(rows), pct, lost)
	if len(rows) < 50 {
		t.Errorf("only %d labelled rows", len(rows))
	}
	if pct < 95 {
		t.Errorf("%.1f%% right, want at least 95%%", pct)
	}
}
