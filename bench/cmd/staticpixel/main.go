// Command staticpixel is the yardstick for the tracker benchmark: a minimal
// Go HTTP server that answers every request with the same 43-byte
// transparent GIF from memory, with the headers the real pixel endpoint
// sends; and /c/... with the same 302 redirect to a fixed URL, with the
// headers the real click endpoint sends.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

// gif is a 1x1 transparent GIF89a, 43 bytes.
var gif = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8099", "address to listen on")
	flag.Parse()
	size := strconv.Itoa(len(gif))
	http.HandleFunc("/c/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Location", "https://example.com/item/0?utm_source=newsletter&utm_medium=email")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusFound)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "image/gif")
		h.Set("Content-Length", size)
		h.Set("Cache-Control", "no-store")
		w.Write(gif)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
