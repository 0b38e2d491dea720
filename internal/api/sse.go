package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// eventStream writes server-sent events (`curl -N`, the IDE, `sluice
// rollout watch`): the rollout events and the provisioning logs stream
// this way.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startEventStream answers 200 with an event stream, with no write
// deadline: a stream lasts as long as what it follows.
func startEventStream(w http.ResponseWriter) *eventStream {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w, rc: rc}
}

// send writes one event: v as JSON in its data, with the event's name
// (none for a plain message) and id (0 for none).
func (e *eventStream) send(event string, id int64, v any) {
	data, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(e.w, "event: %s\n", event)
	}
	if id != 0 {
		fmt.Fprintf(e.w, "id: %d\n", id)
	}
	fmt.Fprintf(e.w, "data: %s\n\n", data)
}

// poll calls step every 250 ms, flushing what it sent, until step says
// done, fails (the stream has started, so the client just sees it end) or
// the client leaves.
func (e *eventStream) poll(ctx context.Context, step func() (done bool, err error)) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		done, err := step()
		_ = e.rc.Flush()
		if done || err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
