package cli

import (
	"strings"
	"testing"
	"time"
)

func TestTextWidth(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"hello", 5},
		{"héllo", 5},
		{"he\u0301llo", 5}, // combining acute accent
		{"日本語", 6},
		{"ｆｕｌｌ", 8}, // full-width latin
		{"😀", 2},
		{"a\u200bb", 2}, // zero-width space
		{"…", 1},
	}
	for _, tt := range tests {
		if got := textWidth(tt.in); got != tt.want {
			t.Errorf("textWidth(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestCut(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer subject line", 10, "a longer…"},
		{"a longer subject line", 9, "a longer…"}, // trailing space dropped before …
		{"日本語の件名です", 7, "日本語…"},
		{"日本語の件名です", 6, "日本…"},
		{"abc", 1, "…"},
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		got := cut(tt.in, tt.w)
		if got != tt.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
		if textWidth(got) > tt.w {
			t.Errorf("cut(%q, %d) = %q is %d wide", tt.in, tt.w, got, textWidth(got))
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines\r\n", "two lines"},
		{"tab\there", "tab here"},
		{"\x1b[31mred\x1b[0m", "[31mred [0m"},
		{"evil\u202Etxt.exe", "eviltxt.exe"},
		{"  many    spaces ", "many spaces"},
		{"bell\a", "bell"},
	}
	for _, tt := range tests {
		got := clean(tt.in)
		if got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.ContainsAny(got, "\x1b\n\r\t\a") {
			t.Errorf("clean(%q) = %q still has control characters", tt.in, got)
		}
	}
}

func TestTableRender(t *testing.T) {
	tb := &table{header: []string{"NAME", "SUBJECT", "N"}, flex: map[int]int{1: 8}}
	tb.add("bob@example.com", "Quarterly numbers are in", "3")
	tb.add("李雷@example.cn", "会议记录", "12")

	got := tb.render(0)
	want := "" +
		"NAME             SUBJECT                   N\n" +
		"bob@example.com  Quarterly numbers are in  3\n" +
		"李雷@example.cn  会议记录                  12\n"
	if got != want {
		t.Errorf("render(0):\n%s\nwant:\n%s", got, want)
	}

	// 40 columns: the subject column (24 wide) must shrink by 5 to 19.
	got = tb.render(40)
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if w := textWidth(line); w > 40 {
			t.Errorf("line %q is %d wide, over 40", line, w)
		}
	}
	if !strings.Contains(got, "Quarterly numbers…") {
		t.Errorf("render(40) did not cut the subject with …:\n%s", got)
	}
	if !strings.Contains(got, "bob@example.com") {
		t.Errorf("render(40) cut a column that is not flexible:\n%s", got)
	}

	// Too narrow for anything: flexible columns stop at their minimum.
	got = tb.render(10)
	if !strings.Contains(got, "Quarter…") {
		t.Errorf("render(10) should cut the subject to its minimum 8:\n%s", got)
	}
}

func TestTableNoTrailingSpaces(t *testing.T) {
	tb := &table{header: []string{"A", "B"}}
	tb.add("x", "")
	tb.add("longer", "y")
	for _, line := range strings.Split(tb.render(0), "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("line %q has trailing spaces", line)
		}
	}
}

func TestRelative(t *testing.T) {
	tests := []struct {
		d    time.Duration // how long before testNow
		want string
	}{
		{0, "just now"},
		{30 * time.Second, "just now"},
		{time.Minute, "1m ago"},
		{59 * time.Minute, "59m ago"},
		{2*time.Hour + 59*time.Minute, "2h ago"},
		{47 * time.Hour, "47h ago"},
		{48 * time.Hour, "2d ago"},
		{400 * 24 * time.Hour, "400d ago"},
		{-30 * time.Second, "in under a minute"},
		{-10 * time.Minute, "in 10m"},
		{-3 * time.Hour, "in 3h"},
	}
	for _, tt := range tests {
		if got := relative(testNow.Add(-tt.d), testNow); got != tt.want {
			t.Errorf("relative(now-%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestStamp(t *testing.T) {
	at := time.Date(2026, 11, 22, 14, 3, 0, 0, time.FixedZone("CET", 3600))
	if got, want := stamp(at, testNow), "2026-11-22 13:03 UTC (3h ago)"; got != want {
		t.Errorf("stamp = %q, want %q", got, want)
	}
	if got := stamp(time.Time{}, testNow); got != "-" {
		t.Errorf("stamp(zero) = %q, want -", got)
	}
	if got := stampPtr(nil, testNow, "not yet"); got != "not yet" {
		t.Errorf("stampPtr(nil) = %q", got)
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.0 kB"}, {12_400_000, "12.4 MB"}, {3_200_000_000, "3.2 GB"},
	}
	for _, tt := range tests {
		if got := size(tt.n); got != tt.want {
			t.Errorf("size(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestColor(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	tests := []struct {
		terminal bool
		vars     map[string]string
		want     bool
	}{
		{true, nil, true},
		{false, nil, false},
		{true, map[string]string{"NO_COLOR": "1"}, false},
		{true, map[string]string{"TERM": "dumb"}, false},
		{true, map[string]string{"TERM": "xterm-256color"}, true},
	}
	for _, tt := range tests {
		if got := colorOn(tt.terminal, env(tt.vars)); got != tt.want {
			t.Errorf("colorOn(%v, %v) = %v, want %v", tt.terminal, tt.vars, got, tt.want)
		}
	}

	tb := &table{header: []string{"KIND", "IP"}}
	tb.add("human (first)", "203.0.113.9")
	tb.add("bot:apple_mpp", "17.58.0.1")
	plain := tb.render(0)
	tb.paint = kindPainter(true, 0)
	colored := tb.render(0)
	if !strings.Contains(colored, colorHuman+"human (first)"+colorReset) || !strings.Contains(colored, colorBot+"bot:apple_mpp"+colorReset) {
		t.Errorf("kinds not coloured: %q", colored)
	}
	strip := strings.NewReplacer(colorHuman, "", colorBot, "", colorReset, "")
	if strip.Replace(colored) != plain {
		t.Errorf("colour changed the layout:\n%q\nwant\n%q", strip.Replace(colored), plain)
	}
	if strings.HasPrefix(colored, "\x1b") {
		t.Errorf("the header was coloured: %q", colored)
	}
	if kindPainter(false, 0) != nil {
		t.Error("kindPainter(false) should be nil")
	}
}

// TestAccountColumn: the ACCOUNT column appears only when a named account
// is among the rows, and "" reads as default.
func TestAccountColumn(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"", "default"}, "A  B\n1  x\n2  y\n"},
		{[]string{"work", ""}, "A  ACCOUNT  B\n1  work     x\n2  default  y\n"},
	}
	for _, tt := range tests {
		tb := &table{header: []string{"A", "B"}, flex: map[int]int{1: 3}}
		tb.add("1", "x")
		tb.add("2", "y")
		tb.accountColumn(1, tt.names)
		if got := tb.render(0); got != tt.want {
			t.Errorf("names %q:\n%s\nwant\n%s", tt.names, got, tt.want)
		}
		if _, ok := tb.flex[1]; ok && len(tb.header) == 3 {
			t.Errorf("flex not moved with its column: %v", tb.flex)
		}
	}
}
