// Package apiload is an open-loop HTTP load generator and, in its test
// files, the control plane's load benchmark (docs/performance.md, "Control
// plane API"): `controlplane serve` runs as a separate process on loopback
// and the benchmark process sends it a fixed rate of mixed reads and writes.
//
// Open loop means that requests are scheduled at a fixed rate whatever the
// response times are: a slow response does not delay the next request, and
// a request's latency is measured from the time it was scheduled to be sent,
// so time spent queueing (in the generator, the kernel or the server) counts.
// A closed-loop generator (N workers each waiting for its response before
// sending the next request) would slow down with the server and hide that
// queueing ("coordinated omission").
package apiload

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Op is one kind of request of a load mix.
type Op struct {
	Name string
	// Weight is the op's share of the requests, relative to the other ops'.
	Weight int
	// Request builds the seq-th request of the run (seq is unique within a
	// run, for unique names). An error counts as a failed request.
	Request func(ctx context.Context, seq int) (*http.Request, error)
}

// Load is one open-loop run: Rate requests per second, the first Warmup of
// them sent but left out of the latencies, then Duration measured.
type Load struct {
	Rate     float64
	Warmup   time.Duration
	Duration time.Duration
	// Timeout bounds each request (default 10s); a request that times out
	// is an error.
	Timeout time.Duration
	// Client sends the requests (default: NewClient()).
	Client *http.Client
	// Mix is the set of requests, each picked with probability weight/sum
	// of the weights, from a random sequence seeded with Seed.
	Mix  []Op
	Seed uint64
}

// NewClient returns an HTTP client for a load generator: keep-alive
// connections, as many as the requests in flight need (an open-loop
// generator must never wait for a free connection), no compression.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// OpStats is what a run measured for one op.
type OpStats struct {
	Name     string
	Requests int           // measured requests (after the warm-up)
	Errors   int           // failed requests, warm-up included
	P50, P99 time.Duration // of the measured requests
}

// Result is what a run measured.
type Result struct {
	// Offered is the scheduled rate (requests/s).
	Offered float64
	// Sent is the number of requests, warm-up included; Measured those
	// after the warm-up.
	Sent, Measured int
	// Errors counts every failed request (transport error, timeout or a
	// status other than 2xx), warm-up included. FirstErrors holds the first
	// few, for the log.
	Errors      int
	FirstErrors []string
	// Latencies of the measured requests, from their scheduled send time to
	// the end of reading the response, sorted.
	Latencies []time.Duration
	// Achieved is the measured requests that succeeded per second, from
	// the first measured request's scheduled time to the last response.
	Achieved float64
	// SendLag is the largest delay between a request's scheduled time and
	// the moment the generator started it: when it is large, the generator
	// itself was short of CPU.
	SendLag time.Duration
	Ops     []OpStats
}

// Percentile returns the p-quantile (0 < p <= 1) of the measured latencies
// (the smallest latency at least a fraction p of the requests did not
// exceed), or 0 when nothing was measured.
func (r *Result) Percentile(p float64) time.Duration {
	return percentile(r.Latencies, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// sample is the outcome of one request.
type sample struct {
	op      int
	latency time.Duration
	end     time.Time
	lag     time.Duration
	err     string
}

// Run sends the load and waits for every response (or timeout). It returns
// an error only when the load is misconfigured; failed requests are
// counted in the result.
func (l Load) Run(ctx context.Context) (*Result, error) {
	if l.Rate <= 0 || l.Duration <= 0 || l.Warmup < 0 {
		return nil, fmt.Errorf("apiload: need Rate > 0, Duration > 0 and Warmup >= 0, got %v, %v, %v", l.Rate, l.Duration, l.Warmup)
	}
	var total int
	for _, op := range l.Mix {
		if op.Weight < 0 || op.Request == nil {
			return nil, fmt.Errorf("apiload: op %q needs a weight >= 0 and a Request func", op.Name)
		}
		total += op.Weight
	}
	if total == 0 {
		return nil, fmt.Errorf("apiload: the mix is empty")
	}
	client := l.Client
	if client == nil {
		client = NewClient()
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}

	warm := int(l.Warmup.Seconds() * l.Rate)
	n := warm + int(l.Duration.Seconds()*l.Rate)
	samples := make([]sample, n)
	// Pick every request's op up front, so the draw costs nothing while
	// sending.
	rng := rand.New(rand.NewPCG(l.Seed, 0x5eed))
	for i := range samples {
		k := rng.IntN(total)
		for j, op := range l.Mix {
			if k < op.Weight {
				samples[i].op = j
				break
			}
			k -= op.Weight
		}
	}

	var wg sync.WaitGroup
	// Start a little later, so scheduling starts on time.
	start := time.Now().Add(20 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			n = i
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &samples[i]
			s.lag = time.Since(at)
			s.err = do(ctx, client, l.Mix[s.op], i, timeout)
			s.end = time.Now()
			s.latency = s.end.Sub(at)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	samples = samples[:n]

	res := &Result{Offered: l.Rate, Sent: n, Measured: n - warm}
	perOp := make([][]time.Duration, len(l.Mix))
	opErrs := make([]int, len(l.Mix))
	var last time.Time
	ok := 0
	for i, s := range samples {
		res.SendLag = max(res.SendLag, s.lag)
		if s.err != "" {
			res.Errors++
			opErrs[s.op]++
			if len(res.FirstErrors) < 5 {
				res.FirstErrors = append(res.FirstErrors, l.Mix[s.op].Name+": "+s.err)
			}
		}
		if i < warm {
			continue
		}
		res.Latencies = append(res.Latencies, s.latency)
		perOp[s.op] = append(perOp[s.op], s.latency)
		if s.end.After(last) {
			last = s.end
		}
		if s.err == "" {
			ok++
		}
	}
	slices.Sort(res.Latencies)
	if res.Measured > 0 {
		first := start.Add(time.Duration(float64(warm) / l.Rate * float64(time.Second)))
		res.Achieved = float64(ok) / last.Sub(first).Seconds()
	}
	for j, op := range l.Mix {
		slices.Sort(perOp[j])
		res.Ops = append(res.Ops, OpStats{Name: op.Name, Requests: len(perOp[j]), Errors: opErrs[j],
			P50: percentile(perOp[j], 0.5), P99: percentile(perOp[j], 0.99)})
	}
	return res, nil
}

// do sends one request and reads its response; it returns "" on a 2xx
// and what went wrong otherwise.
func do(ctx context.Context, client *http.Client, op Op, seq int, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := op.Request(ctx, seq)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Sprintf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "read the body: " + err.Error()
	}
	return ""
}
