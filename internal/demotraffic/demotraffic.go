// Package demotraffic generates the input of the demo project that `make
// dev` seeds (cmd/controlplane/demo): vans, container sensors and card
// payments, about 20 records a second, deterministic for a seed. `runner
// demo-traffic` produces it to Kafka; the control plane starts that as a
// child process, so that it does not link a Kafka client itself.
package demotraffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The demo project's input topics (cmd/controlplane/demo/pipelines).
const (
	VehicleTopic = "vehicles.telemetry"
	SensorTopic  = "sensors.readings"
	PaymentTopic = "payments.card"
)

// Record is one generated record: a JSON object for a topic, keyed,
// with its event time (also its ts field).
type Record struct {
	Topic string
	Key   string
	Time  time.Time
	Value map[string]any
}

// Generator generates the demo project's input, a second at a time, as a
// deterministic function of its seed and the times it is asked for: eight
// vans driving a loop from the depot past three customers (speeding now and
// then, braking hard at times, idling at each customer with the engine on,
// parked at the depot with it off), six container sensors with drift,
// noise, the odd spike and one that warms up every ten minutes, and card
// payments at about five a second with a burst on one card every two
// minutes. About 20 records a second in all.
type Generator struct {
	rng      *rand.Rand
	vans     []*van
	sensors  []*sensor
	payments int
	burst    struct {
		card string
		left int
		next time.Time
	}
}

// point is a place on the vans' loop.
type point struct{ lat, lon float64 }

// leg is a road between two stops with its speed limit.
type leg struct {
	to    point
	limit float64 // km/h
	stop  string  // what happens at its end: customer or depot
}

var (
	depot = point{51.9025, 4.4100}
	// The loop: the depot, three customers (the zones of fleet-zones.yaml),
	// back to the depot. Town roads are 50, the ring road 80.
	loop = []leg{
		{point{51.9120, 4.4370}, 50, "customer"},
		{point{51.9250, 4.4800}, 80, "customer"},
		{point{51.8950, 4.4700}, 80, "customer"},
		{depot, 50, "depot"},
	}
)

type van struct {
	id       string
	leg      int
	from     point
	done     float64 // metres along the leg
	kmh      float64
	engine   bool
	phase    string // driving, customer, parked, warmup
	until    time.Time
	speeding int // seconds of speeding left
	braking  int // seconds of hard braking left
	launch   int // seconds of hard acceleration left
}

type sensor struct {
	id      string
	base    float64
	warming bool // the one that warms up every ten minutes
}

// New returns the generator for seed, its vans placed as at start.
func New(seed uint64, start time.Time) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	for i := range 8 {
		// Spread the vans over the loop, some driving, some parked.
		v := &van{id: fmt.Sprintf("van-%d", i+1), leg: i % len(loop), phase: "driving", engine: true}
		v.from = depot
		if v.leg > 0 {
			v.from = loop[v.leg-1].to
		}
		v.done = g.rng.Float64() * 0.8 * distance(v.from, loop[v.leg].to)
		v.kmh = loop[v.leg].limit * 0.9
		if i%3 == 2 {
			v.phase, v.engine, v.kmh, v.until = "customer", true, 0, start.Add(time.Duration(60+g.rng.IntN(120))*time.Second)
			v.done = distance(v.from, loop[v.leg].to)
		}
		g.vans = append(g.vans, v)
	}
	for i := range 6 {
		g.sensors = append(g.sensors, &sensor{id: fmt.Sprintf("reefer-%d", i+1), base: 3 + g.rng.Float64()*2, warming: i == 2})
	}
	g.burst.next = start.Add(45 * time.Second)
	return g
}

// Tick returns the records of the second that ends at now, in order.
func (g *Generator) Tick(now time.Time) []Record {
	var out []Record
	for _, v := range g.vans {
		out = append(out, g.van(v, now))
	}
	for _, s := range g.sensors {
		out = append(out, g.sensor(s, now))
	}
	return append(out, g.pay(now)...)
}

func (g *Generator) van(v *van, now time.Time) Record {
	leg := loop[v.leg]
	switch v.phase {
	case "customer", "parked", "warmup":
		if !now.Before(v.until) {
			switch v.phase {
			case "parked": // the engine starts and warms up for half a minute
				v.phase, v.engine, v.until = "warmup", true, now.Add(30*time.Second)
			default:
				v.phase, v.engine = "driving", true
				if g.rng.IntN(3) == 0 {
					v.launch = 2 // a hurried start
				}
				v.leg = (v.leg + 1) % len(loop)
				v.from, v.done = leg.to, 0
				leg = loop[v.leg]
			}
		}
	}
	if v.phase == "driving" {
		total := distance(v.from, leg.to)
		// Slowing down to arrive, gently (6 km/h/s), from the distance that
		// takes.
		arriving := total-v.done < v.kmh/3.6*(v.kmh/6)/2+20
		switch {
		case arriving:
			v.braking, v.launch, v.speeding = 0, 0, 0
			v.kmh = math.Max(8, v.kmh-6)
		case v.braking > 0:
			v.braking--
			v.kmh -= 17 + g.rng.Float64()*4 // about 5 m/s²: a hard stop
		case v.launch > 0:
			v.launch--
			v.kmh += 12 + g.rng.Float64()*3 // about 3.7 m/s²
		default:
			target := leg.limit
			switch {
			case v.speeding > 0:
				v.speeding--
				target = leg.limit + 18
			case g.rng.IntN(150) == 0:
				v.speeding = 15 + g.rng.IntN(15)
			case v.kmh > 40 && g.rng.IntN(400) == 0:
				v.braking = 2
			}
			v.kmh += math.Max(-4, math.Min(3, target-v.kmh)) + (g.rng.Float64()-0.5)*2
		}
		v.kmh = math.Max(0, math.Min(140, v.kmh))
		v.done = math.Min(total, v.done+v.kmh/3.6)
		if v.done >= total {
			v.done, v.kmh = total, 0
			if leg.stop == "depot" {
				v.phase, v.engine, v.until = "parked", false, now.Add(time.Duration(150+g.rng.IntN(60))*time.Second)
			} else {
				// Idling with the engine on for 3.5 to 4.5 minutes; now and
				// then a quick drop-off that is too short to count.
				d := 210 + g.rng.IntN(60)
				if g.rng.IntN(4) == 0 {
					d = 60
				}
				v.phase, v.until = "customer", now.Add(time.Duration(d)*time.Second)
			}
		}
	} else {
		v.kmh = 0
	}
	p := along(v.from, leg.to, v.done)
	// A metre or two of GPS noise.
	p.lat += (g.rng.Float64() - 0.5) * 0.00002
	p.lon += (g.rng.Float64() - 0.5) * 0.00003
	return Record{Topic: VehicleTopic, Key: v.id, Time: now, Value: map[string]any{
		"vehicle_id": v.id, "lat": round(p.lat, 6), "lon": round(p.lon, 6), "speed_kmh": round(v.kmh, 1),
		"ignition": v.engine, "road_limit": leg.limit, "ts": now.UTC().Format(time.RFC3339Nano),
	}}
}

func (g *Generator) sensor(s *sensor, now time.Time) Record {
	s.base = math.Max(2, math.Min(6, s.base+(g.rng.Float64()-0.5)*0.05))
	c := s.base + (g.rng.Float64()-0.5)*0.4
	if s.warming {
		// Warm for four minutes of every ten: a door left open.
		if m := now.Unix() % 600; m >= 300 && m < 540 {
			c += math.Min(7, float64(m-300)/10)
		}
	} else if g.rng.IntN(300) == 0 {
		c += 10 + g.rng.Float64()*5 // a spike: a sensor touched by a hand
	}
	return Record{Topic: SensorTopic, Key: s.id, Time: now, Value: map[string]any{
		"sensor": s.id, "celsius": round(c, 2), "ts": now.UTC().Format(time.RFC3339Nano),
	}}
}

func (g *Generator) pay(now time.Time) []Record {
	var out []Record
	n := g.rng.IntN(11) // five a second on average
	card := func() string { return fmt.Sprintf("card-%04d", 1+g.rng.IntN(3000)) }
	mk := func(c string, at time.Time) Record {
		g.payments++
		status := "approved"
		if g.rng.IntN(30) == 0 {
			status = "declined"
		}
		return Record{Topic: PaymentTopic, Key: c, Time: at, Value: map[string]any{
			"payment_id": fmt.Sprintf("p-%07d", g.payments), "card_id": c, "status": status,
			"amount_eur": round(math.Exp(2+g.rng.NormFloat64()), 2), "merchant": fmt.Sprintf("m-%d", 1+g.rng.IntN(40)),
			"ts": at.UTC().Format(time.RFC3339Nano),
		}}
	}
	for i := range n {
		out = append(out, mk(card(), now.Add(-time.Second+time.Duration(i+1)*time.Second/time.Duration(n+1))))
	}
	// A burst: eight payments on one card, one every three seconds.
	if g.burst.left == 0 && !now.Before(g.burst.next) {
		g.burst.card, g.burst.left, g.burst.next = card(), 8, now.Add(2*time.Minute)
	}
	if g.burst.left > 0 && now.Unix()%3 == 0 {
		g.burst.left--
		out = append(out, mk(g.burst.card, now))
	}
	return out
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// distance is the great-circle distance in metres.
func distance(a, b point) float64 {
	const rad = math.Pi / 180
	dLat, dLon := (b.lat-a.lat)*rad, (b.lon-a.lon)*rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.lat*rad)*math.Cos(b.lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * 6371008.8 * math.Asin(math.Min(1, math.Sqrt(s)))
}

// along is the point d metres from a towards b (straight, which is close
// enough over a few kilometres).
func along(a, b point, d float64) point {
	total := distance(a, b)
	if total == 0 {
		return a
	}
	f := math.Min(1, d/total)
	return point{a.lat + (b.lat-a.lat)*f, a.lon + (b.lon-a.lon)*f}
}

// Run writes the records of the generator for seed to brokers once a second,
// with event times from the wall clock, until ctx ends. It creates the
// input topics first (the embedded cluster does not create topics on
// produce). Failures are logged when they start and when they stop, not
// once a second.
func Run(ctx context.Context, log *slog.Logger, brokers []string, seed uint64) error {
	if err := CreateTopics(ctx, log, brokers); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	g := New(seed, time.Now())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failing := false
	log.Info("demo traffic: producing", "topics", []string{VehicleTopic, SensorTopic, PaymentTopic}, "seed", seed)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			recs := g.Tick(now.Truncate(time.Millisecond))
			krs := make([]*kgo.Record, 0, len(recs))
			for _, r := range recs {
				b, err := json.Marshal(r.Value)
				if err != nil {
					return err
				}
				krs = append(krs, &kgo.Record{Topic: r.Topic, Key: []byte(r.Key), Value: b, Timestamp: r.Time})
			}
			err := cl.ProduceSync(ctx, krs...).FirstErr()
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil && !failing:
				failing = true
				log.Warn("demo traffic: produce failed; retrying every second", "err", err)
			case err == nil && failing:
				failing = false
				log.Info("demo traffic: producing again")
			}
		}
	}
}

// CreateTopics creates the demo's input topics unless they exist,
// retrying every two seconds while the cluster is still starting, until
// ctx ends. It logs the first failure, so that an unreachable cluster does
// not look like a silent hang, and the success after one.
func CreateTopics(ctx context.Context, log *slog.Logger, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	failing := false
	for {
		err := tryCreateTopics(ctx, adm)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if failing {
				log.Info("demo traffic: topics created")
			}
			return nil
		case !failing:
			failing = true
			log.Warn("demo traffic: cannot create the topics yet; retrying every 2 s", "brokers", brokers, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func tryCreateTopics(ctx context.Context, adm *kadm.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := adm.CreateTopics(cctx, -1, -1, nil, VehicleTopic, SensorTopic, PaymentTopic)
	if err != nil {
		return err
	}
	for _, t := range res.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", t.Topic, t.Err)
		}
	}
	return nil
}
