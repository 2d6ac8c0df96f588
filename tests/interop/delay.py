"""Delayed messages with the C++ RocketMQ client (PyPI `rocketmq`): sends "now" and "later"
(delay level LEVEL) to TOPIC, consumes both with a push consumer, and reports when each arrived.

Usage: python3 delay.py NAMESRV_ADDR TOPIC LEVEL
Prints one JSON line {"sentAt": ms, "received": [{"body", "at", "reconsumeTimes"}]}; exits 1 on
any error or if both did not arrive within 40 s.
"""
import json
import sys
import time

from rocketmq.client import Message, Producer

from consume import consume


def now_ms():
    return int(time.time() * 1000)


def main():
    addr, topic, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer("PID_apogee_delay_py")
    producer.set_namesrv_addr(addr)
    producer.start()
    sent_at = now_ms()
    try:
        later = Message(topic)
        later.set_body("later")
        later.set_delay_time_level(level)
        producer.send_sync(later)
        now = Message(topic)
        now.set_body("now")
        producer.send_sync(now)
    finally:
        producer.shutdown()

    received = consume(addr, topic, "GID_apogee_delay_py", 2,
                       describe=lambda msg: {"body": msg.body.decode(), "at": now_ms()})
    print(json.dumps({"sentAt": sent_at, "received": received}), flush=True)
    return 0 if len(received) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
