# Writes drive.jsonl, the 1 Hz truck trace trip_test.go reads: two drives
# along straight-edged routes at up to 50 km/h with 1 m of GPS noise, an
# idle at the customer, a jam and parked phases. Deterministic (seed 42):
#   python3 drive.py
import datetime, json, math, random

random.seed(42)
R = 6371008.8


def hav(a, b):
    la1, lo1 = map(math.radians, a)
    la2, lo2 = map(math.radians, b)
    s = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(s))


trip1 = [(51.9000, 4.4000), (51.9050, 4.4000), (51.9050, 4.4300), (51.9200, 4.4450), (51.9250, 4.4800)]
trip2 = [(51.9250, 4.4800), (51.9200, 4.4450), (51.9120, 4.4370), (51.9050, 4.4300)]
t = datetime.datetime(2026, 3, 2, 7, 0, 0, tzinfo=datetime.timezone.utc)
out = []


def emit(pos, kmh, ign):
    global t
    n = random.gauss(0, 1.0) / R * 180 / math.pi, random.gauss(0, 1.0) / R * 180 / math.pi / math.cos(math.radians(pos[0]))
    out.append({"vehicle": "truck-12", "ts": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "lat": round(pos[0] + n[0], 7),
                "lon": round(pos[1] + n[1], 7), "kmh": round(kmh, 1), "ignition": ign})
    t += datetime.timedelta(seconds=1)


def park(pos, secs, ign):
    for _ in range(secs):
        emit(pos, 0.0, ign)


def drive(poly, vmax_kmh, jam_at=None, jam_secs=0):
    L = sum(hav(poly[i], poly[i + 1]) for i in range(len(poly) - 1))
    s, v, vmax, a, jammed = 0.0, 0.0, vmax_kmh / 3.6, 1.5, False

    def at(s):
        for i in range(len(poly) - 1):
            l = hav(poly[i], poly[i + 1])
            if s <= l or i == len(poly) - 2:
                f = min(1, s / l) if l > 0 else 0
                return (poly[i][0] + f * (poly[i + 1][0] - poly[i][0]), poly[i][1] + f * (poly[i + 1][1] - poly[i][1]))
            s -= l

    while s < L:
        emit(at(s), v * 3.6, True)
        if jam_at is not None and not jammed and s >= jam_at * L:
            while v > 0:  # brake to a standstill, wait, go on
                v = max(0, v - 3)
                s += v
                emit(at(s), v * 3.6, True)
            park(at(s), jam_secs, True)
            jammed = True
        rem = L - s
        if rem < v * v / (2 * a):
            v = max(1.0, v - a)
        elif v < vmax:
            v = min(vmax, v + a)
        s = min(L, s + v)
    emit(poly[-1], 0.0, True)
    return L


park(trip1[0], 120, False)
drive(trip1, 50)
park(trip1[-1], 180, True)   # idling at the customer: engine on, standing
park(trip1[-1], 600, False)  # engine off
drive(trip2, 50, jam_at=0.4, jam_secs=120)
park(trip2[-1], 400, False)
with open("drive.jsonl", "w") as f:
    for r in out:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
