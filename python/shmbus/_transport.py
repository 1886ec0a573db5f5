
class SharedMemoryTransport: pass
