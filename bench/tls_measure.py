#!/usr/bin/env python3
"""pusherd TLS costs (docs/tls.md, "Measured"): prints numbers, asserts none.

  bench/tls_measure.py [--build build] [--handshakes 2000] [--conns 2000] [--key ec|rsa]

Starts its own pusherd (plain :7975, TLS :7976) with a throw-away CA and
server certificate made with openssl in a temporary directory, then:
  - full TLS handshakes one after another (TLS 1.3, and TLS 1.2): pusherd's
    CPU time (utime + stime from /proc) per handshake, and handshakes/s seen
    by this single client (client cost included);
  - idle WebSocket connections (connection_established received), N over
    plain ws and N over wss: pusherd's RSS growth per connection;
  - N stalled handshakes (half, then all of a ClientHello each, then
    nothing): RSS growth per connection.
Stops pusherd (SIGTERM, by PID) and removes the directory at the end.
"""
import argparse, asyncio, base64, os, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--build", default="build")
p.add_argument("--handshakes", type=int, default=2000)
p.add_argument("--conns", type=int, default=2000)
p.add_argument("--key", choices=["ec", "rsa"], default="ec")
a = p.parse_args()
PORT, TPORT = 7975, 7976
d = tempfile.mkdtemp(prefix="pusherd-tls-bench-")


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


keyopt = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if a.key == "ec" else ["-newkey", "rsa:2048"]
sh("openssl", "req", "-x509", *keyopt, "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "1",
   "-subj", "/CN=bench CA")
sh("openssl", "req", *keyopt, "-nodes", "-keyout", d + "/s.key", "-out", d + "/s.csr", "-subj", "/CN=localhost")
open(d + "/ext.cnf", "w").write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
sh("openssl", "x509", "-req", "-in", d + "/s.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key", "-set_serial", "7",
   "-days", "1", "-extfile", d + "/ext.cnf", "-out", d + "/s.pem")

pd = subprocess.Popen([os.path.join(a.build, "pusherd"), "--port", str(PORT), "--tls-port", str(TPORT), "--tls-cert",
                       d + "/s.pem", "--tls-key", d + "/s.key", "--log-level", "warn"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_ms():
    f = open("/proc/%d/stat" % pd.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def rss_kib():
    for line in open("/proc/%d/status" % pd.pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", TPORT), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)

    def handshakes(n, version):
        ctx = ssl.create_default_context(cafile=d + "/ca.pem")
        ctx.minimum_version = ctx.maximum_version = version
        c0, t0 = cpu_ms(), time.monotonic()
        for _ in range(n):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", TPORT)), server_hostname="localhost") as s:
                pass
        c1, t1 = cpu_ms(), time.monotonic()
        return (c1 - c0) / n, n / (t1 - t0)

    for name, v in (("TLS 1.3", ssl.TLSVersion.TLSv1_3), ("TLS 1.2", ssl.TLSVersion.TLSv1_2)):
        ms, rate = handshakes(a.handshakes, v)
        print("%s %s full handshakes: pusherd CPU %.3f ms each; %.0f handshakes/s from one client" %
              (a.handshakes, name, ms, rate))

    async def ws_conns(n, tls):
        ctx = ssl.create_default_context(cafile=d + "/ca.pem") if tls else None
        sem = asyncio.Semaphore(100)
        conns = []

        async def one():
            async with sem:
                r, w = await asyncio.open_connection("127.0.0.1", TPORT if tls else PORT, ssl=ctx,
                                                     server_hostname="localhost" if tls else None)
                key = base64.b64encode(os.urandom(16)).decode()
                w.write(("GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key)
                        .encode())
                buf = b""
                while b"connection_established" not in buf:
                    b = await r.read(4096)
                    if not b:
                        raise RuntimeError("closed")
                    buf += b
                conns.append(w)

        await asyncio.gather(*(one() for _ in range(n)))
        return conns

    async def mem():
        out = {}
        for tls in (False, True):
            await asyncio.sleep(0.5)
            r0 = rss_kib()
            conns = await ws_conns(a.conns, tls)
            await asyncio.sleep(0.5)
            r1 = rss_kib()
            out[tls] = (r1 - r0) * 1024.0 / a.conns
            for w in conns:
                w.close()
            await asyncio.sleep(1.5)  # closed, and the heap trimmed by the tick
        return out

    async def stalled(n, whole):
        """n connections that send half (or all) of a ClientHello and then nothing."""
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        o = ssl.create_default_context(cafile=d + "/ca.pem").wrap_bio(inc, out, server_hostname="localhost")
        try:
            o.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        await asyncio.sleep(1.5)
        r0 = rss_kib()
        ws = []
        for _ in range(n):
            r, w = await asyncio.open_connection("127.0.0.1", TPORT)
            w.write(hello if whole else hello[: len(hello) // 2])
            ws.append(w)
        await asyncio.sleep(0.5)
        r1 = rss_kib()
        for w in ws:
            w.close()
        return (r1 - r0) * 1024.0 / n

    m = asyncio.run(mem())
    for whole in (False, True):
        st = asyncio.run(stalled(a.conns, whole))
        print("%d stalled handshakes (%s a ClientHello, then nothing): pusherd RSS +%.0f bytes each" %
              (a.conns, "all of" if whole else "half", st))
    print("%d idle WebSocket connections: pusherd RSS +%.0f bytes each over ws, +%.0f bytes each over wss "
          "(TLS adds %.0f)" % (a.conns, m[False], m[True], m[True] - m[False]))
finally:
    pd.send_signal(signal.SIGTERM)
    try:
        pd.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pd.kill()
        pd.wait()
    shutil.rmtree(d, ignore_errors=True)
