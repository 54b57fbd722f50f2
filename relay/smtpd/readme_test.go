package smtpd

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// README's "What happens to a message" lists what EHLO offers; it must be
// what the server offers (STARTTLS and AUTH depend on the config and are
// described after the list).
func TestREADMEListsEHLOExtensions(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`EHLO offers ([^;]*);`).FindSubmatch(readme)
	if m == nil {
		t.Fatal(`README has no "EHLO offers …;" list`)
	}
	// Items are separated by commas outside parentheses; each one's first
	// word is the keyword.
	var listed []string
	depth, item := 0, ""
	for _, r := range string(m[1]) + "," {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			if f := strings.Fields(item); len(f) > 0 {
				listed = append(listed, strings.Trim(f[0], "`"))
			}
			item = ""
			continue
		}
		item += string(r)
	}
	e := start(t, baseConfig(), nil)
	c := dialRaw(t, e.addr)
	c.send("EHLO client.test")
	var offered []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if kw := strings.Fields(line[4:]); len(kw) > 0 && !strings.HasPrefix(line[4:], "Hello") {
			offered = append(offered, kw[0])
		}
		if line[3] == ' ' {
			break
		}
	}
	slices.Sort(listed)
	slices.Sort(offered)
	if !slices.Equal(listed, offered) {
		t.Errorf("README lists %v, the server offers %v", listed, offered)
	}
}
