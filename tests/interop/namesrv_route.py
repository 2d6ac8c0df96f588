"""Asks an Apogee name server for a topic's queues with the C++ RocketMQ client (PyPI `rocketmq`).

Usage: python3 namesrv_route.py NAMESRV_ADDR TOPIC
Prints one JSON line: {"queues": [[brokerName, queueId], ...]}; exits 1 with the client's error.
"""
import ctypes
import json
import sys

from rocketmq.client import PullConsumer
from rocketmq.ffi import _CMessageQueue, dll


def main():
    addr, topic = sys.argv[1], sys.argv[2]
    consumer = PullConsumer("apogee-interop-route")
    consumer.set_namesrv_addr(addr)
    consumer.start()
    try:
        queues = ctypes.POINTER(_CMessageQueue)()
        size = ctypes.c_int()
        status = dll.FetchSubscriptionMessageQueues(
            consumer._handle, topic.encode(), ctypes.pointer(queues), ctypes.pointer(size)
        )
        if int(status) != 0:
            print(json.dumps({"error": int(status)}))
            return 1
        found = [[queues[i].brokerName.decode(), queues[i].queueId] for i in range(size.value)]
        dll.ReleaseSubscriptionMessageQueue(queues)
        print(json.dumps({"queues": sorted(found)}), flush=True)
        return 0
    finally:
        consumer.shutdown()


if __name__ == "__main__":
    sys.exit(main())
