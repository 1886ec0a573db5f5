/*
 * test_cpp.cpp -- the C++17 wrapper (include/shmbus.hpp), used as its
 * header comment says: RAII handles that are move-only and close what they
 * opened; failures thrown as shmbus::error with the code and the library's
 * detail, or returned by the try_* calls; typed state channels
 * (State<double>, State<std::array<float, 9>>) that C handles read alike;
 * a matrix (StateArray<double>) written and read in place through spans;
 * a queue put, reserved and peeked in place, to end of stream.
 * Built with -std=c++17 when a C++ compiler is installed.
 */
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <unistd.h>

#include "shmbus.hpp"

static std::string bus_name;

#define CHECK(cond, ...) do { if (!(cond)) { \
	std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	std::fprintf(stderr, __VA_ARGS__); std::fputc('\n', stderr); std::exit(1); } } while (0)

/* The call must throw shmbus::error with this code and a detail. */
#define THROWS(code_, ...) do { bool thrown_ = false; \
	try { __VA_ARGS__; } catch (const shmbus::error &e) { thrown_ = true; \
		CHECK(e.code() == (code_) && !e.detail().empty() && \
		      std::strstr(e.what(), shmbus_strerror(code_)) && \
		      std::strcmp(e.name(), shmbus_errname(code_)) == 0 && \
		      std::strncmp(e.name(), "SHMBUS_E", 8) == 0, \
		      "%s threw %d (%s), expected %d", #__VA_ARGS__, e.code(), e.what(), (int)(code_)); \
		std::printf("  %s: %s\n", #__VA_ARGS__, e.what()); } \
	CHECK(thrown_, "%s did not throw", #__VA_ARGS__); } while (0)

/* Nothing left in /dev/shm however the test ends: returning, a failed
 * CHECK (exit), an exception nobody caught, the suite's SIGTERM. */
static char shm_path[128];
static void cleanup() { unlink(shm_path); }
static void on_signal(int sig)
{
	unlink(shm_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static_assert(!std::is_copy_constructible_v<shmbus::Bus>, "Bus is move-only");
static_assert(!std::is_copy_assignable_v<shmbus::State<double>>, "State is move-only");
static_assert(!std::is_copy_constructible_v<shmbus::Queue>, "Queue is move-only");
static_assert(!std::is_copy_constructible_v<shmbus::Message>, "Message is move-only");
static_assert(std::is_nothrow_move_constructible_v<shmbus::Bus>, "Bus moves without throwing");
static_assert(shmbus::dtype_of<double>() == SHMBUS_FLOAT64 && shmbus::dtype_of<uint16_t>() == SHMBUS_UINT16 &&
	      shmbus::dtype_of<bool>() == SHMBUS_BOOL, "dtypes");

static int run()
{

	THROWS(SHMBUS_ENOENT, shmbus::Bus::open(bus_name));
	shmbus::Bus bus = shmbus::Bus::create(bus_name);
	CHECK(bus && bus.name() == bus_name, "bus name '%s'", bus.name().c_str());
	THROWS(SHMBUS_EEXIST, shmbus::Bus::create(bus_name));

	{
		/* State<double>: written here, read by a C handle and by another
		 * C++ handle; the wrong type is refused with the detail. */
		shmbus::State<double> y(bus, "y");
		double got = 0;
		CHECK(y.try_read(got) == SHMBUS_ENODATA, "never written: %d", y.try_read(got));
		THROWS(SHMBUS_ENODATA, y.read());
		y.write(1.5);
		uint64_t seq = 0;
		CHECK(y.read(&seq) == 1.5 && seq == 1, "read %g seq %llu", y.read(), (unsigned long long)seq);

		shmbus_state_t *c = nullptr;
		shmbus_state_opts_t o;
		shmbus_state_opts_init(&o);
		o.create = 0;
		CHECK(shmbus_state_open(bus.handle(), "y", &o, &c) == 0, "C open: %s", shmbus_last_error());
		CHECK(shmbus_state_read(c, &got, sizeof(got), nullptr) == 0 && got == 1.5, "C reads %g", got);
		shmbus_state_close(c);

		THROWS(SHMBUS_ETYPE, shmbus::State<int32_t>(bus, "y"));
		double seen = 0;
		CHECK(y.read_in_place([&](const double &v) { seen = v; }) == 1 && seen == 1.5, "in place %g", seen);

		/* Moved: the new handle works, the old one is empty. */
		shmbus::State<double> y2(std::move(y));
		CHECK(!y && y2 && y2.read() == 1.5, "moved handle");
		y2.write(2.5);
		CHECK(y2.seq() == 2, "seq %llu", (unsigned long long)y2.seq());
	}
	{
		/* State<std::array<float, 9>>: float32, shape [9], as C sees it. */
		std::array<float, 9> m{};
		std::iota(m.begin(), m.end(), 1.0f);
		shmbus::State<std::array<float, 9>> r(bus, "rot");
		r.write(m);
		CHECK(r.read() == m, "array read back");
		shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
		ci.size_of = sizeof(ci);
		CHECK(shmbus_channel_info(bus.handle(), "rot", &ci) == 0 && ci.dtype == SHMBUS_FLOAT32 &&
		      ci.ndim == 1 && ci.shape[0] == 9, "rot: dtype %d ndim %u shape %llu", ci.dtype, ci.ndim,
		      (unsigned long long)ci.shape[0]);
		THROWS(SHMBUS_ETYPE, (shmbus::State<std::array<float, 4>>(bus, "rot")));
	}
	{
		/* A matrix written in place, read in place and copied. */
		const uint64_t rows = 256, cols = 512;
		shmbus::StateArray<double> mat(bus, "mat", {rows, cols});
		CHECK(mat.size() == rows * cols, "size %zu", mat.size());
		shmbus::span<double> w = mat.write_begin();
		CHECK(w.size() == rows * cols, "write span %zu", (size_t)w.size());
		for (size_t i = 0; i < w.size(); i++)
			w[i] = (double)i;
		mat.commit();
		double sum = 0;
		uint64_t s = mat.read_in_place([&](shmbus::span<const double> v) {
			sum = std::accumulate(v.begin(), v.end(), 0.0);
		});
		double n = (double)(rows * cols);
		CHECK(s == 1 && sum == n * (n - 1) / 2, "in place: seq %llu sum %g", (unsigned long long)s, sum);
		shmbus::StateArray<double> any(bus, "mat", {}, false);
		std::vector<double> copy = any.read();
		CHECK(copy.size() == rows * cols && copy[12345] == 12345.0, "copied %zu", copy.size());
		THROWS(SHMBUS_ETYPE, shmbus::StateArray<double>(bus, "mat", {rows, cols + 1}));
	}
	{
		/* A queue: join, put, reserve in place, shut; peek in place in
		 * order, each released when its Message goes. */
		shmbus::Queue q(bus, "q");
		shmbus::Queue c(bus, "q");
		c.join("g");
		q.put("one");
		q.put(std::string_view("two"));
		shmbus::span<std::byte> slot = q.reserve(5);
		std::memcpy(slot.data(), "three", 5);
		q.commit(5);
		shmbus::span<std::byte> gone = q.reserve(4);
		std::memcpy(gone.data(), "lost", 4);
		q.abort();
		q.shut();
		CHECK(q.is_shut(), "not shut");
		const char *want[] = {"one", "two", "three"};
		for (int i = 0; i < 3; i++) {
			std::optional<shmbus::Message> m = c.peek(5000000000ll);
			CHECK(m && m->view() == want[i] && !m->redelivered(), "message %d: '%.*s'", i,
			      m ? (int)m->size() : 0, m ? m->view().data() : "");
		}
		CHECK(!c.peek(5000000000ll), "no end of stream after three messages");
		CHECK(!c.get(0), "get after end of stream");
		THROWS(SHMBUS_ECLOSED, q.put("late"));
		CHECK(q.try_put("late", 4) == SHMBUS_ECLOSED, "try_put after shut");
	}
	{
		/* RAII: a second Bus handle is a second peer until its scope ends. */
		uint32_t before = bus.info().peers;
		{
			shmbus::Bus other = shmbus::Bus::open(bus_name);
			CHECK(bus.info().peers == before + 1, "peers %u, were %u", bus.info().peers, before);
			shmbus::Bus moved = std::move(other);
			CHECK(!other && moved, "moved bus");
		}
		CHECK(bus.info().peers == before, "peers %u after the scope, were %u", bus.info().peers, before);
	}
	CHECK(shmbus::version() == shmbus_version(nullptr, nullptr, nullptr), "version");
	std::printf("  State<double>, State<array<float,9>>, StateArray<double> 256x512 in place, "
		    "Queue put/reserve/peek to end of stream, errors with code and detail\n");
	std::printf("test_cpp: all passed\n");
	return 0;
}

int main()
{
	std::setvbuf(stdout, nullptr, _IOLBF, 0);
	std::printf("test_cpp\n");
	bus_name = "t-cpp-" + std::to_string(getpid());
	std::snprintf(shm_path, sizeof(shm_path), "/dev/shm/shmbus-%s", bus_name.c_str());
	std::atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	try {
		return run();
	} catch (const std::exception &e) {
		std::fprintf(stderr, "FAIL: uncaught %s\n", e.what());
		return 1;
	}
}
