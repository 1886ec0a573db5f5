/*
 * matrix_writer_cpp.cpp -- the matrix-streaming use case with the simulation
 * written in C++ against include/shmbus.hpp: every frame a large float64
 * matrix is computed straight into the buffer the next value goes into
 * (StateArray<double>::write_begin hands out a span over shared memory,
 * commit publishes it), and a reader in another process -- Python through
 * numpy (examples/python/matrix_reader.py --writer THIS), C, or C++ -- takes
 * the newest frame in place.
 *
 * The same command line and the same frames as matrix_writer.c: frame f
 * holds m[i][j] = f + 0.001 * ((i + j) % 1000); state "done" gets the frame
 * count at the end; --wait-reader waits for state "ready".
 */
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "shmbus.hpp"

static volatile std::sig_atomic_t stop_flag;

static void usage()
{
	std::printf("usage: matrix_writer_cpp [--bus NAME] [--rows N] [--cols N] [--frames N] [--hz F]\n"
		    "                         [--wait-reader SECONDS]\n"
		    "Publish --frames frames (default 100) of a --rows x --cols float64 matrix\n"
		    "(default 1024 x 1024) on state channel 'frame' of bus NAME (default\n"
		    "matrix), at --hz frames per second (0: as fast as possible, default 30),\n"
		    "written in place through the C++ wrapper (shmbus.hpp).\n"
		    "m[i][j] = frame + 0.001 * ((i + j) %% 1000). Sets state 'done' to the\n"
		    "frame count at the end. --wait-reader waits for state 'ready' to be\n"
		    "written by a reader first. The bus is removed at exit.\n");
}

int main(int argc, char **argv)
{
	std::string name = "matrix";
	long rows = 1024, cols = 1024, frames = 100;
	double hz = 30, wait_reader = 0;

	for (int a = 1; a < argc; a++) {
		std::string arg = argv[a];
		if (arg == "--help" || arg == "-h") {
			usage();
			return 0;
		} else if (a + 1 < argc && arg == "--bus") {
			name = argv[++a];
		} else if (a + 1 < argc && arg == "--rows") {
			rows = std::atol(argv[++a]);
		} else if (a + 1 < argc && arg == "--cols") {
			cols = std::atol(argv[++a]);
		} else if (a + 1 < argc && arg == "--frames") {
			frames = std::atol(argv[++a]);
		} else if (a + 1 < argc && arg == "--hz") {
			hz = std::atof(argv[++a]);
		} else if (a + 1 < argc && arg == "--wait-reader") {
			wait_reader = std::atof(argv[++a]);
		} else {
			std::fprintf(stderr, "matrix_writer_cpp: bad argument '%s' (try --help)\n", argv[a]);
			return 2;
		}
	}
	if (rows <= 0 || cols <= 0 || frames <= 0 || hz < 0) {
		std::fprintf(stderr, "matrix_writer_cpp: rows, cols and frames must be > 0, hz >= 0\n");
		return 2;
	}
	std::signal(SIGINT, [](int) { stop_flag = 1; });
	std::signal(SIGTERM, [](int) { stop_flag = 1; });

	long f = 0;
	try {
		shmbus_bus_opts_t bo;
		shmbus_bus_opts_init(&bo);
		bo.size = 3 * (uint64_t)rows * (uint64_t)cols * 8 + (4u << 20);
		shmbus::Bus bus = shmbus::Bus::open_or_create(name, &bo);
		shmbus::StateArray<double> frame(bus, "frame", {(uint64_t)rows, (uint64_t)cols});
		shmbus::State<int64_t> done(bus, "done");
		shmbus::State<int64_t> ready(bus, "ready");

		if (wait_reader > 0)
			ready.wait(0, (int64_t)(wait_reader * 1e9));
		auto t0 = std::chrono::steady_clock::now(), next = t0;
		for (f = 1; f <= frames && !stop_flag; f++) {
			shmbus::span<double> m = frame.write_begin();   // shared memory, no copy
			for (long i = 0; i < rows; i++)
				for (long j = 0; j < cols; j++)
					m[(std::size_t)(i * cols + j)] = (double)f + 0.001 * (double)((i + j) % 1000);
			frame.commit();
			if (hz > 0) {
				next += std::chrono::nanoseconds((long long)(1e9 / hz));
				std::this_thread::sleep_until(next);
			}
		}
		f--;
		done.write(f);
		std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
		std::printf("matrix_writer_cpp: %ld frames of %ld x %ld float64 (%.1f MiB) in %.2f s\n", f,
			    rows, cols, (double)rows * (double)cols * 8 / 1048576.0, dt.count());
	} catch (const shmbus::error &e) {
		std::fprintf(stderr, "matrix_writer_cpp: %s\n", e.what());
		shmbus::Bus::unlink(name);
		return 1;
	}
	shmbus::Bus::unlink(name);
	return stop_flag ? 130 : 0;
}
