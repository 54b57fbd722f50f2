package cli

import (
	"os"
	"os/exec"
	"path/filepath"
)

// selfCommand is how the user calls this binary, for the hints it prints:
// "./pixelrelay" when it sits in the working directory and is not the
// pixelrelay on $PATH (the README's `make run` leaves it in the clone),
// else "pixelrelay".
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "pixelrelay"
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	if p, err := exec.LookPath("pixelrelay"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && r == exe {
			return "pixelrelay"
		}
	}
	wd, err := os.Getwd()
	if r, err2 := filepath.EvalSymlinks(wd); err == nil && err2 == nil && filepath.Dir(exe) == r {
		return "./" + filepath.Base(exe)
	}
	return "pixelrelay"
}
