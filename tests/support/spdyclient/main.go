// spdyclient: a SPDY/3.1 client of the CRI streaming server, as Kubernetes' clients behave
// (client-go's remotecommand and portforward over moby/spdystream), for pyrkt's tests.
//
//	spdyclient [flags] exec|attach URL        stdin from ours; a JSON report on stdout
//	spdyclient [flags] portforward URL        -port, -requests, -send
//
// The report: the HTTP status and negotiated protocol, then what each stream carried.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

type report struct {
	Status   string   `json:"status"`
	Protocol string   `json:"protocol,omitempty"`
	Body     string   `json:"body,omitempty"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
	Error    string   `json:"error"`
	Forwards []pair   `json:"forwards,omitempty"`
	Refused  []string `json:"refused,omitempty"`
	Pinged   bool     `json:"pinged"`
}

type pair struct {
	Data  string `json:"data"`
	Error string `json:"error"`
}

// bufConn reads what the response's reader buffered before the connection itself.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "spdyclient: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	protocols := flag.String("protocols", "v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io", "X-Stream-Protocol-Version values, in order")
	stdin := flag.Bool("stdin", false, "open a stdin stream (our stdin copied, then closed)")
	stdout := flag.Bool("stdout", false, "open a stdout stream")
	stderr := flag.Bool("stderr", false, "open a stderr stream")
	tty := flag.Bool("tty", false, "open a resize stream (v3 and later)")
	resize := flag.String("resize", "", "WxH sent on the resize stream before stdin")
	delay := flag.Duration("delay", 300*time.Millisecond, "pause between the resize and stdin")
	port := flag.String("port", "", "port-forward: the port header")
	requests := flag.Int("requests", 1, "port-forward: stream pairs, one after the other")
	send := flag.String("send", "", "port-forward: what each data stream sends")
	legacy := flag.Bool("legacy", false, "port-forward: no requestID header (an old client)")
	fin := flag.Bool("fin", false, "port-forward: half-close each data stream once sent")
	flag.Parse()
	if flag.NArg() != 2 {
		fail("usage: spdyclient [flags] exec|attach|portforward URL")
	}
	mode, target := flag.Arg(0), flag.Arg(1)
	u, err := url.Parse(target)
	if err != nil {
		fail("%v", err)
	}
	raw, err := net.DialTimeout("tcp", u.Host, 30*time.Second)
	if err != nil {
		fail("%v", err)
	}
	req, _ := http.NewRequest("POST", target, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	if mode == "portforward" {
		req.Header.Add("X-Stream-Protocol-Version", "portforward.k8s.io")
	} else {
		for _, p := range strings.Split(*protocols, ",") {
			req.Header.Add("X-Stream-Protocol-Version", p)
		}
	}
	if err := req.Write(raw); err != nil {
		fail("%v", err)
	}
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		fail("%v", err)
	}
	out := report{Status: resp.Status, Protocol: resp.Header.Get("X-Stream-Protocol-Version")}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		out.Body = string(body)
		finish(out)
		return
	}
	conn, err := spdystream.NewConnection(&bufConn{raw, br}, false)
	if err != nil {
		fail("%v", err)
	}
	go conn.Serve(spdystream.NoOpStreamHandler)
	pinged := make(chan bool, 1)
	go func() { // as client-go's periodic pings: answered, before anything else happens
		_, err := conn.Ping()
		pinged <- err == nil
	}()
	select {
	case out.Pinged = <-pinged:
	case <-time.After(10 * time.Second):
	}
	if mode == "portforward" {
		forward(conn, &out, *port, *requests, *send, *legacy, *fin)
	} else {
		remote(conn, &out, *stdin, *stdout, *stderr, *tty, *resize, *delay)
	}
	conn.Close()
	finish(out)
}

func finish(out report) {
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("%v", err)
	}
}

func open(conn *spdystream.Connection, headers http.Header) *spdystream.Stream {
	s, err := conn.CreateStream(headers, nil, false)
	if err != nil {
		fail("creating a stream: %v", err)
	}
	if err := s.WaitTimeout(30 * time.Second); err != nil {
		fail("waiting for the reply to stream %s: %v", headers.Get("streamType"), err)
	}
	return s
}

func typed(kind string) http.Header {
	h := http.Header{}
	h.Set("streamType", kind)
	return h
}

// remote is client-go's remotecommand: the streams in its order, stdin copied then closed,
// stdout and stderr read to their ends, then the error stream's status.
func remote(conn *spdystream.Connection, out *report, stdin, stdout, stderr, tty bool, resize string, delay time.Duration) {
	errStream := open(conn, typed("error"))
	var in, o, e, rs *spdystream.Stream
	if stdin {
		in = open(conn, typed("stdin"))
	}
	if stdout {
		o = open(conn, typed("stdout"))
	}
	if stderr {
		e = open(conn, typed("stderr"))
	}
	if tty {
		rs = open(conn, typed("resize"))
	}
	var wg sync.WaitGroup
	read := func(s *spdystream.Stream, into *string) {
		defer wg.Done()
		b, _ := io.ReadAll(s)
		*into = string(b)
	}
	for _, p := range []struct {
		s    *spdystream.Stream
		into *string
	}{{o, &out.Stdout}, {e, &out.Stderr}, {errStream, &out.Error}} {
		if p.s != nil {
			wg.Add(1)
			go read(p.s, p.into)
		}
	}
	if rs != nil && resize != "" {
		w, h, _ := strings.Cut(resize, "x")
		width, _ := strconv.Atoi(w)
		height, _ := strconv.Atoi(h)
		json.NewEncoder(rs).Encode(map[string]int{"Width": width, "Height": height})
		time.Sleep(delay)
	}
	if in != nil {
		go func() {
			io.Copy(in, os.Stdin)
			in.Close()
		}()
	}
	wg.Wait()
	for _, s := range []*spdystream.Stream{errStream, in, o, e, rs} {
		if s != nil {
			s.Reset()
		}
	}
}

// forward is client-go's portforward: per request, an error stream (our half closed at once)
// and a data stream with the same port and requestID; what the data stream brings back, to its
// end, then the error stream's text.
func forward(conn *spdystream.Connection, out *report, port string, requests int, send string, legacy, fin bool) {
	for i := 0; i < requests; i++ {
		headers := http.Header{}
		headers.Set("port", port)
		if !legacy {
			headers.Set("requestID", strconv.Itoa(i))
		}
		headers.Set("streamType", "error")
		errStream, err := conn.CreateStream(headers, nil, false)
		if err != nil {
			fail("%v", err)
		}
		if err := errStream.WaitTimeout(30 * time.Second); err != nil {
			out.Refused = append(out.Refused, err.Error())
			continue
		}
		errStream.Close()
		headers.Set("streamType", "data")
		data := open(conn, headers)
		var p pair
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(errStream)
			p.Error = string(b)
		}()
		if send != "" {
			data.Write([]byte(strings.ReplaceAll(send, `\r\n`, "\r\n")))
		}
		if fin {
			data.Close()
		}
		b, _ := io.ReadAll(data)
		p.Data = string(b)
		wg.Wait()
		data.Reset()
		errStream.Reset()
		out.Forwards = append(out.Forwards, p)
	}
}
