/*
 * shmbus.hpp -- a header-only C++17 wrapper of shmbus.h.
 *
 * Handles are RAII and move-only: a Bus, State, StateArray or Queue closes
 * what it opened when it goes out of scope (close the channels before their
 * bus, as the C API asks: declare the Bus first). A failing call throws
 * shmbus::error, which carries the SHMBUS_E* code (code()) and the
 * library's detail (what() = "words: detail"); the try_* members return
 * the code instead and never throw. handle() gives the C handle, for the
 * calls this wrapper does not cover.
 *
 * Zero-copy access goes through shmbus::span (std::span under C++20, else
 * a small span of the same shape: data(), size(), begin(), end(), []):
 * StateArray::write_begin() hands out the buffer the next value goes into,
 * read_in_place() shows the latest value where it lies, Queue::reserve()
 * hands out a message slot and Queue::peek() a message in its slot.
 *
 *   shmbus::Bus bus = shmbus::Bus::open_or_create("plant");
 *   shmbus::State<double> y(bus, "y");
 *   y.write(1.5);
 *   double v = y.read();
 *
 * State<T> is a state channel whose value is one T: an arithmetic type (its
 * dtype: double is float64, ...), a std::array of one (dtype of the
 * element, shape [N]) or any other trivially copyable type (bytes, shape
 * [sizeof(T)]). StateArray<E> is a state channel of a shape given at run
 * time (a matrix). Queue moves messages of bytes.
 */
#ifndef SHMBUS_HPP
#define SHMBUS_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#endif

#include "shmbus.h"

namespace shmbus {

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

/* A failed call: code() is the SHMBUS_E* code, name() its name
 * ("SHMBUS_ETIMEDOUT"), detail() the library's sentence about it
 * (shmbus_last_error() at the time of the failure). */
class error : public std::runtime_error {
public:
	error(int code, const std::string &detail)
		: std::runtime_error(std::string(shmbus_strerror(code)) +
				     (detail.empty() ? "" : ": " + detail)),
		  code_(code), detail_(detail) {}
	int code() const noexcept { return code_; }
	const char *name() const noexcept { return shmbus_errname(code_); }
	const std::string &detail() const noexcept { return detail_; }

private:
	int code_;
	std::string detail_;
};

/* Throws shmbus::error for a negative code; returns it otherwise. */
inline int check(int r)
{
	if (r < 0)
		throw error(r, shmbus_last_error());
	return r;
}

/* ------------------------------------------------------------------ */
/* span                                                                 */
/* ------------------------------------------------------------------ */

#if defined(__cpp_lib_span)
template <class T> using span = std::span<T>;
#else
/* The part of C++20's std::span that the wrapper hands out. */
template <class T> class span {
public:
	using element_type = T;
	using value_type = std::remove_cv_t<T>;
	using size_type = std::size_t;
	using iterator = T *;

	constexpr span() noexcept = default;
	constexpr span(T *p, std::size_t n) noexcept : p_(p), n_(n) {}
	template <class U, std::size_t N,
		  class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
	constexpr span(std::array<U, N> &a) noexcept : p_(a.data()), n_(N) {}
	template <class U, std::size_t N,
		  class = std::enable_if_t<std::is_convertible_v<const U (*)[], T (*)[]>>>
	constexpr span(const std::array<U, N> &a) noexcept : p_(a.data()), n_(N) {}
	template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
	span(std::vector<U> &v) noexcept : p_(v.data()), n_(v.size()) {}
	template <class U, class = std::enable_if_t<std::is_convertible_v<const U (*)[], T (*)[]>>>
	span(const std::vector<U> &v) noexcept : p_(v.data()), n_(v.size()) {}
	template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
	constexpr span(const span<U> &s) noexcept : p_(s.data()), n_(s.size()) {}

	constexpr T *data() const noexcept { return p_; }
	constexpr std::size_t size() const noexcept { return n_; }
	constexpr std::size_t size_bytes() const noexcept { return n_ * sizeof(T); }
	constexpr bool empty() const noexcept { return n_ == 0; }
	constexpr T &operator[](std::size_t i) const noexcept { return p_[i]; }
	constexpr T *begin() const noexcept { return p_; }
	constexpr T *end() const noexcept { return p_ + n_; }

private:
	T *p_ = nullptr;
	std::size_t n_ = 0;
};
#endif

/* ------------------------------------------------------------------ */
/* dtypes                                                               */
/* ------------------------------------------------------------------ */

/* The dtype of an element type; SHMBUS_BYTES for any other. */
template <class E> constexpr int dtype_of() noexcept
{
	using T = std::remove_cv_t<E>;
	if constexpr (std::is_same_v<T, bool>)
		return SHMBUS_BOOL;
	else if constexpr (std::is_same_v<T, double>)
		return SHMBUS_FLOAT64;
	else if constexpr (std::is_same_v<T, float>)
		return SHMBUS_FLOAT32;
	else if constexpr (std::is_integral_v<T> && sizeof(T) == 1)
		return std::is_signed_v<T> ? SHMBUS_INT8 : SHMBUS_UINT8;
	else if constexpr (std::is_integral_v<T> && sizeof(T) == 2)
		return std::is_signed_v<T> ? SHMBUS_INT16 : SHMBUS_UINT16;
	else if constexpr (std::is_integral_v<T> && sizeof(T) == 4)
		return std::is_signed_v<T> ? SHMBUS_INT32 : SHMBUS_UINT32;
	else if constexpr (std::is_integral_v<T> && sizeof(T) == 8)
		return std::is_signed_v<T> ? SHMBUS_INT64 : SHMBUS_UINT64;
	else
		return SHMBUS_BYTES;
}

namespace detail {
template <class T> struct value_shape {
	/* a scalar of its dtype, or sizeof(T) bytes */
	static void fill(shmbus_state_opts_t &o)
	{
		o.dtype = dtype_of<T>();
		o.ndim = o.dtype == SHMBUS_BYTES ? 1 : 0;     /* 0: a scalar, as in C */
		o.shape[0] = o.dtype == SHMBUS_BYTES ? sizeof(T) : 1;
	}
};
template <class E, std::size_t N> struct value_shape<std::array<E, N>> {
	static void fill(shmbus_state_opts_t &o)
	{
		o.dtype = dtype_of<E>();
		o.ndim = 1;
		o.shape[0] = o.dtype == SHMBUS_BYTES ? sizeof(std::array<E, N>) : N;
	}
};
} // namespace detail

/* ------------------------------------------------------------------ */
/* Bus                                                                  */
/* ------------------------------------------------------------------ */

class Bus {
public:
	Bus() noexcept = default;
	explicit Bus(shmbus_bus_t *b) noexcept : b_(b) {}
	Bus(Bus &&o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
	Bus &operator=(Bus &&o) noexcept
	{
		if (this != &o) {
			close();
			b_ = std::exchange(o.b_, nullptr);
		}
		return *this;
	}
	Bus(const Bus &) = delete;
	Bus &operator=(const Bus &) = delete;
	~Bus() { close(); }

	/* Open an existing bus (shmbus_bus_open). */
	static Bus open(const std::string &name, const shmbus_bus_opts_t *opts = nullptr)
	{
		shmbus_bus_t *b = nullptr;
		check(shmbus_bus_open(name.c_str(), opts, &b));
		return Bus(b);
	}
	/* Create a new bus (shmbus_bus_create); SHMBUS_EEXIST if taken. */
	static Bus create(const std::string &name, const shmbus_bus_opts_t *opts = nullptr)
	{
		shmbus_bus_t *b = nullptr;
		check(shmbus_bus_create(name.c_str(), opts, &b));
		return Bus(b);
	}
	/* Open, creating with opts if missing; *created says which. */
	static Bus open_or_create(const std::string &name, const shmbus_bus_opts_t *opts = nullptr,
				  bool *created = nullptr)
	{
		shmbus_bus_t *b = nullptr;
		int c = 0;
		check(shmbus_bus_open_or_create(name.c_str(), opts, &b, &c));
		if (created)
			*created = c != 0;
		return Bus(b);
	}
	/* Remove a bus's name (shmbus_bus_unlink); returns the code. */
	static int unlink(const std::string &name) noexcept
	{
		return shmbus_bus_unlink(name.c_str());
	}

	/* Detach now (the destructor does it otherwise); returns the code. */
	int close() noexcept
	{
		return b_ ? shmbus_bus_close(std::exchange(b_, nullptr)) : 0;
	}
	std::string name() const { return b_ ? shmbus_bus_name(b_) : ""; }
	shmbus_bus_info_t info() const
	{
		shmbus_bus_info_t i{};
		i.size_of = sizeof(i);
		check(shmbus_bus_info(b_, &i));
		return i;
	}
	shmbus_bus_t *handle() const noexcept { return b_; }
	explicit operator bool() const noexcept { return b_ != nullptr; }

private:
	shmbus_bus_t *b_ = nullptr;
};

/* ------------------------------------------------------------------ */
/* State channels                                                       */
/* ------------------------------------------------------------------ */

namespace detail {
/* What State and StateArray share: the handle and the untyped calls. */
class state_handle {
public:
	state_handle() noexcept = default;
	state_handle(state_handle &&o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
	state_handle &operator=(state_handle &&o) noexcept
	{
		if (this != &o) {
			close();
			s_ = std::exchange(o.s_, nullptr);
		}
		return *this;
	}
	state_handle(const state_handle &) = delete;
	state_handle &operator=(const state_handle &) = delete;
	~state_handle() { close(); }

	int close() noexcept { return s_ ? shmbus_state_close(std::exchange(s_, nullptr)) : 0; }
	/* The sequence number of the latest value, 0 if none. */
	uint64_t seq() const noexcept { return shmbus_state_seq(s_); }
	/* Wait for a value newer than newer_than; returns its seq. */
	uint64_t wait(uint64_t newer_than, int64_t timeout_ns = SHMBUS_FOREVER)
	{
		uint64_t s = 0;
		check(shmbus_state_wait(s_, newer_than, timeout_ns, &s));
		return s;
	}
	/* Give up the writer role (or an open write_begin turn). */
	void release_writer() { check(shmbus_state_release_writer(s_)); }
	shmbus_state_t *handle() const noexcept { return s_; }
	explicit operator bool() const noexcept { return s_ != nullptr; }

protected:
	void open(Bus &bus, const std::string &name, const shmbus_state_opts_t &o)
	{
		check(shmbus_state_open(bus.handle(), name.c_str(), &o, &s_));
	}
	/* f(pointer) on the latest value where it lies, again until it was a
	 * whole value; returns its seq. */
	template <class F> uint64_t read_in_place_raw(F &&f) const
	{
		for (;;) {
			const void *p = nullptr;
			uint64_t s = 0;
			check(shmbus_state_read_begin(s_, &p, &s));
			f(p);
			int r = shmbus_state_read_validate(s_, s);
			if (r == 0)
				return s;
			if (r != SHMBUS_EAGAIN)
				check(r);
		}
	}

	shmbus_state_t *s_ = nullptr;
};
} // namespace detail

/* A state channel whose value is one T (see the top of this file). */
template <class T> class State : public detail::state_handle {
	static_assert(std::is_trivially_copyable_v<T>, "a state value is copied as bytes");

public:
	State() noexcept = default;
	/* Open, and by default create, the channel `name` of bus for values of
	 * type T; an existing channel of another dtype or shape is
	 * SHMBUS_ETYPE. writers: SHMBUS_WRITERS_*. */
	State(Bus &bus, const std::string &name, bool create = true,
	      int writers = SHMBUS_WRITERS_DEFAULT)
	{
		shmbus_state_opts_t o;
		shmbus_state_opts_init(&o);
		detail::value_shape<T>::fill(o);
		o.create = create;
		o.writers = writers;
		open(bus, name, o);
	}

	void write(const T &v) { check(shmbus_state_write(s_, &v, sizeof(T))); }
	/* The latest value; *seq (if given) gets its sequence number.
	 * SHMBUS_ENODATA if never written. */
	T read(uint64_t *seq = nullptr) const
	{
		T v;
		check(shmbus_state_read(s_, &v, sizeof(T), seq));
		return v;
	}
	/* Without exceptions: the code (0, SHMBUS_ENODATA, ...). */
	int try_read(T &out, uint64_t *seq = nullptr) const noexcept
	{
		return shmbus_state_read(s_, &out, sizeof(T), seq);
	}
	int try_write(const T &v) noexcept { return shmbus_state_write(s_, &v, sizeof(T)); }
	/* Zero-copy: f(const T &) on the latest value where it lies (called
	 * again if the writer overwrote it meanwhile); returns its seq. */
	template <class F> uint64_t read_in_place(F &&f) const
	{
		return read_in_place_raw([&](const void *p) { f(*static_cast<const T *>(p)); });
	}
};

/* A state channel of elements E in a shape given at run time, e.g. a
 * matrix, written and read in place. */
template <class E> class StateArray : public detail::state_handle {
	static_assert(std::is_trivially_copyable_v<E>, "elements are copied as bytes");

public:
	StateArray() noexcept = default;
	/* shape: up to SHMBUS_MAX_DIMS extents ({rows, cols}); empty: open an
	 * existing channel of dtype E whatever its shape. */
	StateArray(Bus &bus, const std::string &name, std::initializer_list<uint64_t> shape,
		   bool create = true, int writers = SHMBUS_WRITERS_DEFAULT)
	{
		shmbus_state_opts_t o;
		shmbus_state_opts_init(&o);
		o.dtype = dtype_of<E>();
		if (shape.size() > SHMBUS_MAX_DIMS)
			throw error(SHMBUS_EINVAL, "more than SHMBUS_MAX_DIMS dimensions");
		o.ndim = (uint32_t)shape.size();
		std::size_t i = 0;
		for (uint64_t d : shape)
			o.shape[i++] = d;
		o.create = shape.size() ? create : 0;
		o.writers = writers;
		open(bus, name, o);
		if (shmbus_state_size(s_) % sizeof(E)) {
			close();
			throw error(SHMBUS_ETYPE, "'" + name + "' holds values that are not whole elements");
		}
	}

	/* Elements of one value. */
	std::size_t size() const noexcept { return shmbus_state_size(s_) / sizeof(E); }
	void write(span<const E> v)
	{
		check(shmbus_state_write(s_, v.data(), v.size() * sizeof(E)));
	}
	/* Copy the latest value into out (at least size() elements). */
	uint64_t read(span<E> out) const
	{
		uint64_t s = 0;
		check(shmbus_state_read(s_, out.data(), out.size() * sizeof(E), &s));
		return s;
	}
	std::vector<E> read(uint64_t *seq = nullptr) const
	{
		std::vector<E> v(size());
		uint64_t s = read(span<E>(v.data(), v.size()));
		if (seq)
			*seq = s;
		return v;
	}
	/* Zero-copy write: fill the span, then commit(). */
	span<E> write_begin()
	{
		void *p = nullptr;
		check(shmbus_state_write_begin(s_, &p));
		return span<E>(static_cast<E *>(p), size());
	}
	void commit() { check(shmbus_state_write_commit(s_)); }
	/* Zero-copy read: f(span<const E>) on the latest value where it lies
	 * (called again if the writer overwrote it meanwhile); returns its seq. */
	template <class F> uint64_t read_in_place(F &&f) const
	{
		std::size_t n = size();
		return read_in_place_raw([&](const void *p) { f(span<const E>(static_cast<const E *>(p), n)); });
	}
};

/* ------------------------------------------------------------------ */
/* Queues                                                               */
/* ------------------------------------------------------------------ */

class Queue;

/* A message handed out by Queue::peek, in its slot: released (and so
 * consumed) when this goes out of scope or release() is called. */
class Message {
public:
	Message(Message &&o) noexcept : q_(std::exchange(o.q_, nullptr)), m_(o.m_) {}
	Message &operator=(Message &&o) noexcept
	{
		if (this != &o) {
			release();
			q_ = std::exchange(o.q_, nullptr);
			m_ = o.m_;
		}
		return *this;
	}
	Message(const Message &) = delete;
	Message &operator=(const Message &) = delete;
	~Message() { release(); }

	span<const std::byte> data() const noexcept
	{
		return span<const std::byte>(static_cast<const std::byte *>(m_.data), m_.len);
	}
	std::string_view view() const noexcept
	{
		return std::string_view(static_cast<const char *>(m_.data), m_.len);
	}
	std::size_t size() const noexcept { return m_.len; }
	uint64_t seq() const noexcept { return m_.seq; }
	/* Held by a member that died before: delivered again. */
	bool redelivered() const noexcept { return m_.flags & SHMBUS_MSG_REDELIVERED; }
	/* Consume it now; returns the code. */
	inline int release() noexcept;

private:
	friend class Queue;
	Message(shmbus_queue_t *q, const shmbus_msg_t &m) noexcept : q_(q), m_(m) {}
	shmbus_queue_t *q_;
	shmbus_msg_t m_;
};

inline int Message::release() noexcept
{
	return q_ ? shmbus_queue_release(std::exchange(q_, nullptr)) : 0;
}

class Queue {
public:
	Queue() noexcept = default;
	/* Open, and by default create, the queue `name` of bus (opts: slots,
	 * max_msg, ...; nullptr for the defaults). */
	Queue(Bus &bus, const std::string &name, const shmbus_queue_opts_t *opts = nullptr)
	{
		check(shmbus_queue_open(bus.handle(), name.c_str(), opts, &q_));
	}
	Queue(Queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
	Queue &operator=(Queue &&o) noexcept
	{
		if (this != &o) {
			close();
			q_ = std::exchange(o.q_, nullptr);
		}
		return *this;
	}
	Queue(const Queue &) = delete;
	Queue &operator=(const Queue &) = delete;
	~Queue() { close(); }
	int close() noexcept { return q_ ? shmbus_queue_close(std::exchange(q_, nullptr)) : 0; }

	/* Producing. */
	void put(const void *msg, std::size_t len, int64_t timeout_ns = SHMBUS_FOREVER)
	{
		check(shmbus_queue_put(q_, msg, len, timeout_ns));
	}
	void put(std::string_view msg, int64_t timeout_ns = SHMBUS_FOREVER)
	{
		put(msg.data(), msg.size(), timeout_ns);
	}
	int try_put(const void *msg, std::size_t len, int64_t timeout_ns = 0) noexcept
	{
		return shmbus_queue_put(q_, msg, len, timeout_ns);
	}
	/* Zero-copy: the slot to fill, then commit(len) or abort(). */
	span<std::byte> reserve(std::size_t len, int64_t timeout_ns = SHMBUS_FOREVER)
	{
		void *p = nullptr;
		check(shmbus_queue_reserve(q_, len, &p, timeout_ns));
		return span<std::byte>(static_cast<std::byte *>(p), len);
	}
	void commit(std::size_t len) { check(shmbus_queue_commit(q_, len)); }
	void abort() { check(shmbus_queue_abort(q_)); }
	void wait_groups(uint32_t n, int64_t timeout_ns = SHMBUS_FOREVER)
	{
		check(shmbus_queue_wait_groups(q_, n, timeout_ns));
	}
	/* End of stream. */
	void shut() { check(shmbus_queue_shut(q_)); }
	bool is_shut() const { return shmbus_queue_is_shut(q_); }

	/* Consuming: join a group first. */
	void join(const std::string &group, uint32_t flags = SHMBUS_GROUP_LATEST)
	{
		check(shmbus_queue_join(q_, group.c_str(), flags));
	}
	/* The next message in place; nothing at end of stream. Throws
	 * SHMBUS_ETIMEDOUT (SHMBUS_EAGAIN with timeout 0) when none came. */
	std::optional<Message> peek(int64_t timeout_ns = SHMBUS_FOREVER)
	{
		shmbus_msg_t m{};
		int r = shmbus_queue_peek(q_, &m, timeout_ns);
		if (r == SHMBUS_ECLOSED)
			return std::nullopt;
		check(r);
		return Message(q_, m);
	}
	/* The next message, copied; nothing at end of stream. */
	std::optional<std::vector<std::byte>> get(int64_t timeout_ns = SHMBUS_FOREVER)
	{
		std::optional<Message> m = peek(timeout_ns);
		if (!m)
			return std::nullopt;
		span<const std::byte> d = m->data();
		return std::vector<std::byte>(d.begin(), d.end());
	}
	shmbus_queue_t *handle() const noexcept { return q_; }
	explicit operator bool() const noexcept { return q_ != nullptr; }

private:
	shmbus_queue_t *q_ = nullptr;
};

/* The library's version ("MAJOR.MINOR.PATCH"). */
inline std::string version() { return shmbus_version(nullptr, nullptr, nullptr); }

} // namespace shmbus

#endif /* SHMBUS_HPP */
