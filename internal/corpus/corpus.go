// Package corpus hands tests the shared corpus of real-world messages:
// $PIXELRELAY_CORPUS, else shared/corpus beside the repository (where our
// machines and CI keep it). It is not part of the repository, so on a plain
// clone the corpus tests skip, saying so; where the corpus is required
// (PIXELRELAY_REQUIRE_CORPUS=1, which .ci/run sets, or CI set) a missing
// corpus fails them.
package corpus

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// minFiles is fewer messages than the corpus has ever had: a directory
// with fewer is not the corpus (a wrong path, a partial copy).
const minFiles = 100

// Dir returns where the corpus is looked for.
func Dir() string {
	if d := os.Getenv("PIXELRELAY_CORPUS"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared", "corpus")
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "corpus")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, "..", "shared", "corpus")
		}
	}
}

// Required reports whether a missing corpus is a failure.
func Required() bool {
	return os.Getenv("PIXELRELAY_REQUIRE_CORPUS") != "" || os.Getenv("CI") != ""
}

// Files returns the corpus's messages (*.eml, sorted). When the corpus is
// missing it skips t with the reason, or fails t when the corpus is
// required.
func Files(t testing.TB) []string {
	t.Helper()
	files, missing := find()
	if missing != "" {
		if Required() {
			t.Fatalf("%s; PIXELRELAY_REQUIRE_CORPUS or CI is set, so this is a failure", missing)
		}
		t.Skipf("%s: the corpus checks did not run (set PIXELRELAY_CORPUS to run them)", missing)
	}
	return files
}

// Present reports whether the corpus is there, for tests that also run
// on fixtures of their own: they call Files in a subtest of their own to
// report (or fail) a missing corpus.
func Present() bool {
	_, missing := find()
	return missing == ""
}

func find() (files []string, missing string) {
	dir := Dir()
	files, _ = filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) < minFiles {
		return nil, "the shared corpus is missing: " + strconv.Itoa(len(files)) + " messages in " + dir
	}
	sort.Strings(files)
	return files, ""
}

// Tags reads the corpus's INDEX.tsv: each file's tags (see the tag
// definitions at the end of SOURCES.md). It skips or fails t like Files.
func Tags(t testing.TB) map[string][]string {
	t.Helper()
	Files(t)
	f, err := os.Open(filepath.Join(Dir(), "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tags := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 2 || cols[0] == "filename" {
			continue
		}
		tags[cols[0]] = strings.Split(cols[1], ",")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tags) < minFiles {
		t.Fatalf("INDEX.tsv lists only %d messages", len(tags))
	}
	return tags
}
