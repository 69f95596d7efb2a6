// backprop._core: the pybind11 module. Conversion, checks with clear
// messages, and GIL release; all math lives in cpp/backprop/.
//
// The Python package validates user input once; these checks are the last
// line that keeps anything reachable from Python from touching memory it
// should not (shapes, dtypes, strides, index ranges). Index arrays are copied
// before the GIL is released, so other threads cannot change them unchecked.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/numpy.h>

#include <Eigen/Core>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backprop/architecture.hpp"
#include "backprop/instances.hpp"
#include "backprop/optimizers.hpp"
#include "backprop/scratch.hpp"
#include "backprop/trainer.hpp"

namespace py = pybind11;
using namespace backprop;

namespace {

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

std::string shape_of(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s << (d ? ", " : "") << a.shape(d);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

template <class T>
void check_dtype(const py::array& a, const char* name) {
  if (!py::array_t<T>::check_(a))
    fail(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
         std::string(py::str(a.dtype())));
}

// The core reads NumPy buffers through T pointers, so their address must be a
// multiple of alignof(T): arrays NumPy allocates are, but views at odd byte
// offsets (np.frombuffer, structured fields) need not be, and a misaligned
// load is undefined behaviour.
template <class T>
void check_aligned(const py::array& a, const char* name) {
  if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T))
    fail(std::string(name) + " must be aligned to " + std::to_string(alignof(T)) +
         " bytes, its element size (numpy.require(a, requirements='A') gives an aligned copy)");
}

// A 2-D array of T with `cols` columns (when cols >= 0), any aligned strides.
template <class T>
DataSource<T> data_source(const py::array& a, const char* name, Index cols) {
  check_dtype<T>(a, name);
  if (a.ndim() != 2) fail(std::string(name) + " must be 2-D, got shape " + shape_of(a));
  if (cols >= 0 && a.shape(1) != cols)
    fail(std::string(name) + " must have " + std::to_string(cols) + " columns, got shape " + shape_of(a));
  if (a.shape(0) == 0) fail(std::string(name) + " must have at least one row");
  check_aligned<T>(a, name);
  if (a.strides(0) % py::ssize_t(sizeof(T)) || a.strides(1) % py::ssize_t(sizeof(T)))
    fail(std::string(name) + " must have strides that are multiples of its element size");
  DataSource<T> src;
  src.data = static_cast<const T*>(a.data());
  src.rows = a.shape(0);
  src.cols = a.shape(1);
  src.row_stride = a.strides(0) / py::ssize_t(sizeof(T));
  src.col_stride = a.strides(1) / py::ssize_t(sizeof(T));
  return src;
}

// A contiguous 1-D array of exactly n elements of T.
template <class T>
const T* flat_input(const py::array& a, const char* name, Index n) {
  check_dtype<T>(a, name);
  if (a.ndim() != 1 || a.shape(0) != n)
    fail(std::string(name) + " must have shape (" + std::to_string(n) + ",), got " + shape_of(a));
  if (!(a.flags() & py::array::c_style)) fail(std::string(name) + " must be contiguous");
  check_aligned<T>(a, name);
  return static_cast<const T*>(a.data());
}

// The same, writeable.
template <class T>
T* flat_buffer(py::array& a, const char* name, Index n) {
  flat_input<T>(a, name, n);
  if (!a.writeable()) fail(std::string(name) + " must be writeable");
  return static_cast<T*>(a.mutable_data());
}

// The n values of a contiguous 1-D int64 array, each in [0, bound), copied:
// the core reads them with the GIL released, when another Python thread
// could change the caller's array after this check.
std::vector<std::int64_t> index_array(const py::array& a, const char* name, Index n, Index bound) {
  if (!py::array_t<std::int64_t>::check_(a) || a.ndim() != 1 || !(a.flags() & py::array::c_style))
    fail(std::string(name) + " must be a contiguous 1-D int64 array");
  if (a.shape(0) != n)
    fail(std::string(name) + " must have " + std::to_string(n) + " entries, got " + std::to_string(a.shape(0)));
  check_aligned<std::int64_t>(a, name);
  const auto* first = static_cast<const std::int64_t*>(a.data());
  std::vector<std::int64_t> values(first, first + n);
  for (const std::int64_t v : values)
    if (v < 0 || v >= bound)
      fail(std::string(name) + " holds " + std::to_string(v) + ", outside [0, " + std::to_string(bound) + ")");
  return values;
}

// `value` as an ndarray borrowed from the caller (alive for the whole call),
// never a converted temporary whose buffer would die before the core reads it.
py::array as_ndarray(const py::object& value, const char* name) {
  if (!py::isinstance<py::array>(value)) fail(std::string(name) + " must be a NumPy array");
  return py::reinterpret_borrow<py::array>(value);
}

// The n values of a contiguous 1-D float64 array, each finite and >= 0,
// copied for the same reason as index_array's.
std::vector<double> weight_array(const py::array& a, const char* name, Index n) {
  if (!py::array_t<double>::check_(a) || a.ndim() != 1 || !(a.flags() & py::array::c_style))
    fail(std::string(name) + " must be a contiguous 1-D float64 array");
  if (a.shape(0) != n)
    fail(std::string(name) + " must have " + std::to_string(n) + " entries, got " + std::to_string(a.shape(0)));
  check_aligned<double>(a, name);
  const auto* first = static_cast<const double*>(a.data());
  std::vector<double> values(first, first + n);
  for (const double v : values)
    if (!(v >= 0.0 && std::isfinite(v))) fail(std::string(name) + " must hold finite values >= 0");
  return values;
}

// What the core copies out of Python objects before releasing the GIL.
struct TargetStore {
  std::vector<std::int64_t> labels;
  std::vector<double> weights;
};

// Targets given either as class labels or as dense rows, for n samples, and
// optional sample weights. Labels and weights are copied into `store`, which
// must outlive the returned source.
template <class T>
TargetSource<T> target_source(const Architecture& arch, const py::object& labels, const py::object& targets,
                              const py::object& weights, Index n, TargetStore& store) {
  if (labels.is_none() == targets.is_none()) fail("give exactly one of labels and targets");
  TargetSource<T> y;
  if (!labels.is_none()) {
    if (arch.loss() != Loss::cross_entropy) fail("class labels need the cross_entropy loss");
    store.labels = index_array(as_ndarray(labels, "labels"), "labels", n, arch.n_outputs());
    y.labels = store.labels.data();
  } else {
    y.dense = data_source<T>(as_ndarray(targets, "targets"), "targets", arch.n_outputs());
    if (y.dense.rows != n) fail("targets must have one row per sample of X");
  }
  if (!weights.is_none()) {
    store.weights = weight_array(as_ndarray(weights, "weights"), "weights", n);
    y.weights = store.weights.data();
  }
  return y;
}

// Interpreter exit. While Python finalizes, a daemon thread that tries to
// retake the GIL is ended by PyThread_exit_thread, which unwinds its stack
// with a forced unwind (abi::__forced_unwind). Through our frames that unwind
// would end the process (std::terminate: it meets a destructor, which may not
// throw) or release Python objects without the GIL. Such a thread parks
// instead, holding nothing, until the process is gone; Python 3.14 does the
// same to its own daemon threads.
[[noreturn]] void park_until_exit() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// Takes the GIL back for `state`, or parks the thread when Python is exiting.
// Finalization may begin while the thread waits inside PyEval_RestoreThread:
// the forced unwind that then leaves it is caught here and never goes on.
void restore_thread(PyThreadState* state) noexcept {
  if (interpreter_finalizing()) park_until_exit();
  try {
    PyEval_RestoreThread(state);
  } catch (...) {  // only PyThread_exit_thread's forced unwind can get here
    park_until_exit();
  }
}

// Releases the GIL for the scope, like py::gil_scoped_release, but retakes it
// with restore_thread.
class GilRelease {
 public:
  GilRelease() : state_(PyEval_SaveThread()) {}
  ~GilRelease() { restore_thread(state_); }
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// Polled between batches with the GIL released: true once Python has a
// pending exception (Ctrl-C's KeyboardInterrupt). Takes the GIL at most every
// 20 ms, so it costs nothing measurable.
class InterruptPoll {
 public:
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_check_ < std::chrono::milliseconds(20)) return false;
    last_check_ = now;
    restore_thread(PyGILState_GetThisThreadState());
    const bool pending = PyErr_CheckSignals() != 0;
    PyEval_SaveThread();
    return pending;
  }

 private:
  std::chrono::steady_clock::time_point last_check_ = std::chrono::steady_clock::now();
};

// Raises KeyboardInterrupt for a Ctrl-C that arrived since the last call. Every long call starts
// with it: its InterruptPoll only looks 20 ms into the call, so in a loop of shorter calls (an
// epoch of a small network, a custom loop of train_on_batch) the core itself would never look;
// the interpreter's check between calls normally sees it too, this makes the core not depend on it.
void stop_if_interrupted() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// Calls f(float{}) or f(double{}) by the dtype of params.
template <class F>
decltype(auto) dispatch(const py::array& params, F&& f) {
  if (py::array_t<float>::check_(params)) return f(float{});
  if (py::array_t<double>::check_(params)) return f(double{});
  fail("params must have dtype float32 or float64, got " + std::string(py::str(params.dtype())));
}

// A training set checked once for a model (Model.dataset): X, and class
// labels or dense targets, and optional sample weights. Labels and weights
// are copied (see index_array); X and the targets are referenced, kept alive
// by this object, and re-mapped on each use at O(1) cost, so an epoch loop or
// a data-parallel step reads rows by index without checking them again.
class Dataset {
 public:
  Dataset(const Architecture& arch, const py::array& X, const py::object& labels, const py::object& targets,
          const py::object& weights)
      : X_(X), n_inputs_(arch.n_inputs()), n_outputs_(arch.n_outputs()) {
    double_ = py::array_t<double>::check_(X_);
    if (double_)
      check<double>(arch, labels, targets, weights);
    else
      check<float>(arch, labels, targets, weights);  // fails unless X is float32
  }

  Index rows() const { return rows_; }

  // X and the targets, mapped for T (the caller checked the dtype).
  template <class T>
  DataSource<T> X() const {
    return data_source<T>(X_, "X", n_inputs_);
  }
  template <class T>
  TargetSource<T> y() const {
    TargetSource<T> y;
    y.labels = store_.labels.empty() ? nullptr : store_.labels.data();
    y.weights = store_.weights.empty() ? nullptr : store_.weights.data();
    if (!y.labels) y.dense = data_source<T>(targets_, "targets", n_outputs_);
    return y;
  }

  // Fails unless this data set was made for `arch` in T.
  template <class T>
  void check_for(const Architecture& arch) const {
    if (double_ != std::is_same_v<T, double>)
      fail(std::string("the data set has dtype ") + (double_ ? "float64" : "float32") + ", params " +
           dtype_name<T>());
    if (arch.n_inputs() != n_inputs_ || arch.n_outputs() != n_outputs_)
      fail("the data set was made for a network of another shape");
  }

 private:
  template <class T>
  void check(const Architecture& arch, const py::object& labels, const py::object& targets,
             const py::object& weights) {
    rows_ = data_source<T>(X_, "X", n_inputs_).rows;
    target_source<T>(arch, labels, targets, weights, rows_, store_);
    if (!targets.is_none()) targets_ = as_ndarray(targets, "targets");
  }

  py::array X_, targets_;
  Index n_inputs_, n_outputs_, rows_ = 0;
  TargetStore store_;
  bool double_ = false;
};

// The model's Scratch for one call, or a private one while another thread's
// call holds the model's (two Python threads may use one network at once; a
// shared workspace would then be written by both).
template <class T>
class ScratchLease {
 public:
  ScratchLease(std::mutex& mutex, Scratch<T>& shared) : lock_(mutex, std::try_to_lock) {
    if (lock_.owns_lock()) {
      scratch_ = &shared;
    } else {
      own_.emplace();
      scratch_ = &*own_;
    }
  }
  ScratchLease(const ScratchLease&) = delete;  // scratch_ may point into own_
  ScratchLease& operator=(const ScratchLease&) = delete;
  Scratch<T>& operator*() { return *scratch_; }

 private:
  std::unique_lock<std::mutex> lock_;
  std::optional<Scratch<T>> own_;
  Scratch<T>* scratch_;
};

// Whether every value of `a` is finite: a scan half as long as NumPy's sum
// for the large arrays every fit checks. None where it does not apply (other
// dtypes, more dimensions, misaligned, or no contiguous runs): the caller
// decides.
py::object all_finite_values(const py::array& a) {
  if (a.ndim() < 1 || a.ndim() > 2) return py::none();
  const auto scan = [&](auto tag) -> py::object {
    using T = decltype(tag);
    const auto size = py::ssize_t(sizeof(T));
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T)) return py::none();
    for (py::ssize_t d = 0; d < a.ndim(); ++d)
      if (a.strides(d) % size) return py::none();
    DataSource<T> src;
    src.data = static_cast<const T*>(a.data());
    if (a.flags() & py::array::c_style) {  // one run of every value
      src.rows = 1;
      src.cols = a.size();
    } else if (a.ndim() == 2 && (a.strides(0) == size || a.strides(1) == size)) {  // rows or columns in runs
      src.rows = a.shape(0);
      src.cols = a.shape(1);
      src.row_stride = a.strides(0) / size;
      src.col_stride = a.strides(1) / size;
    } else {  // no run of contiguous values: NumPy's sum is as fast
      return py::none();
    }
    bool finite;
    {
      GilRelease release;
      finite = all_finite(src);
    }
    return py::bool_(finite);
  };
  if (py::isinstance<py::array_t<float>>(a)) return scan(float{});
  if (py::isinstance<py::array_t<double>>(a)) return scan(double{});
  return py::none();
}

// The core of one network shape, for one scalar type chosen per call by the
// dtype of `params`.
class Model {
 public:
  Model(std::vector<Index> sizes, const std::vector<std::string>& activations, const std::string& loss,
        std::vector<bool> norms, std::vector<double> dropout, std::uint64_t dropout_seed)
      : arch_(std::move(sizes), parse_activations(activations), loss_from_name(loss), std::move(norms),
              std::move(dropout), dropout_seed) {}

  Index n_params() const { return arch_.n_params(); }

  // check_finite: refuse NaN and ±inf in X (the caller's checks may leave
  // that to this scan, far cheaper than NumPy's for a single row).
  py::array forward(py::array params, const py::array& X, bool check_finite) const {
    return dispatch(params, [&](auto tag) -> py::array {
      using T = decltype(tag);
      const T* p = flat_input<T>(params, "params", arch_.n_params());
      const DataSource<T> x = data_source<T>(X, "X", arch_.n_inputs());
      if (check_finite && !all_finite(x)) throw py::value_error("X contains NaN or infinity");
      py::array_t<T> out({x.rows, arch_.n_outputs()});
      T* o = out.mutable_data();
      ScratchLease<T> scratch = lease<T>();
      stop_if_interrupted();
      bool completed;
      {
        GilRelease release;
        completed = predict(arch_, p, x, o, InterruptPoll(), *scratch);
      }
      if (!completed) throw py::error_already_set();  // KeyboardInterrupt
      return out;
    });
  }

  py::tuple evaluate(py::array params, const py::array& X, const py::object& labels,
                     const py::object& targets, const py::object& weights) const {
    return dispatch(params, [&](auto tag) -> py::tuple {
      using T = decltype(tag);
      const T* p = flat_input<T>(params, "params", arch_.n_params());
      const DataSource<T> x = data_source<T>(X, "X", arch_.n_inputs());
      TargetStore store;
      const TargetSource<T> y = target_source<T>(arch_, labels, targets, weights, x.rows, store);
      ScratchLease<T> scratch = lease<T>();
      LossStats s;
      stop_if_interrupted();
      bool completed;
      {
        GilRelease release;
        completed = backprop::evaluate(arch_, p, x, y, InterruptPoll(), *scratch, s);
      }
      if (!completed) throw py::error_already_set();
      return py::make_tuple(s.loss_sum, s.n_correct, s.weight_sum);
    });
  }

  py::tuple gradients(py::array params, const py::array& X, const py::object& labels,
                      const py::object& targets, const py::object& weights, std::uint64_t dropout_step) const {
    return dispatch(params, [&](auto tag) -> py::tuple {
      using T = decltype(tag);
      const T* p = flat_input<T>(params, "params", arch_.n_params());
      const DataSource<T> x = data_source<T>(X, "X", arch_.n_inputs());
      TargetStore store;
      const TargetSource<T> y = target_source<T>(arch_, labels, targets, weights, x.rows, store);
      py::array_t<T> grads(arch_.n_params());
      T* g = grads.mutable_data();
      ScratchLease<T> scratch = lease<T>();
      stop_if_interrupted();
      LossStats sums;
      bool completed;
      {
        GilRelease release;
        completed = gradient(arch_, p, x, y, nullptr, x.rows, true, g, InterruptPoll(), *scratch, sums, dropout_step);
      }
      if (!completed) throw py::error_already_set();
      const double inverse_total = inverse_weight(sums.weight_sum);
      return py::make_tuple(sums.loss_sum * inverse_total, grads, sums.n_correct * inverse_total);
    });
  }

  // out ← Σ_i w_i ∂L_i/∂θ over rows `rows` of a checked data set (a
  // data-parallel rank's share of a batch); returns (Σ w·loss, Σ w·right, Σ w).
  py::tuple gradient_sum(py::array params, const Dataset& data, const py::array& rows, py::array out) const {
    return dispatch(params, [&](auto tag) -> py::tuple {
      using T = decltype(tag);
      data.check_for<T>(arch_);
      const T* p = flat_input<T>(params, "params", arch_.n_params());
      T* g = flat_buffer<T>(out, "out", arch_.n_params());
      if (rows.ndim() != 1 || rows.shape(0) == 0) fail("rows must be a non-empty 1-D array");
      const std::vector<std::int64_t> index = index_array(rows, "rows", rows.shape(0), data.rows());
      const DataSource<T> x = data.X<T>();
      const TargetSource<T> y = data.y<T>();
      ScratchLease<T> scratch = lease<T>();
      LossStats sums;
      stop_if_interrupted();
      bool completed;
      {
        GilRelease release;
        // distributed.fit refuses dropout (its masks would have to follow the global batch): step 1
        completed = gradient(arch_, p, x, y, index.data(), Index(index.size()), false, g, InterruptPoll(),
                             *scratch, sums, 1);
      }
      if (!completed) throw py::error_already_set();
      return py::make_tuple(sums.loss_sum, sums.n_correct, sums.weight_sum);
    });
  }

  // One optimizer step with the gradient grad_scale · grads (batch_weight: Σ w
  // of the batch it came from, read by the sklearn convention). False when
  // not finite: then nothing changed.
  bool optimizer_step(py::array params, const py::array& grads, const OptimizerConfig& config, py::object first,
                      py::object second, py::array step, double batch_weight, double grad_scale) const {
    return dispatch(params, [&](auto tag) -> bool {
      using T = decltype(tag);
      T* p = flat_buffer<T>(params, "params", arch_.n_params());
      const T* g = flat_input<T>(grads, "grads", arch_.n_params());
      std::int64_t* step_count = step_counter(step, 1);
      OptimizerState<T> state = optimizer_state<T>(config, first, second, *step_count);
      ScratchLease<T> scratch = lease<T>();
      OptimizerConfig step_config = config;
      if (config.decay_per_batch_weight) step_config.weight_decay *= inverse_weight(batch_weight);
      bool finite;
      {
        GilRelease release;
        // The step overwrites its gradient buffer: it works on a (scaled) copy.
        T* consumed = (*scratch).grads(arch_.n_params());
        if (grad_scale == 1.0) {
          std::copy(g, g + arch_.n_params(), consumed);
        } else {
          const T scale = T(grad_scale);
          for (Index i = 0; i < arch_.n_params(); ++i) consumed[i] = g[i] * scale;
        }
        finite = backprop::optimizer_step(arch_, step_config, state, (*scratch).backup(state, arch_.n_params()), p,
                                          consumed, Team{}, (*scratch).probes(1));
        *step_count = state.step;
      }
      return finite;
    });
  }

  // A data set checked once for this model (see Dataset).
  Dataset dataset(const py::array& X, const py::object& labels, const py::object& targets,
                  const py::object& weights) const {
    return Dataset(arch_, X, labels, targets, weights);
  }

  py::dict train_epoch(py::array params, const Dataset& data, const py::array& order, Index batch_size,
                       const OptimizerConfig& config, py::object first, py::object second,
                       py::array step, bool record_grad_norms) const {
    return dispatch(params, [&](auto tag) -> py::dict {
      using T = decltype(tag);
      data.check_for<T>(arch_);
      T* p = flat_buffer<T>(params, "params", arch_.n_params());
      const DataSource<T> x = data.X<T>();
      const TargetSource<T> y = data.y<T>();
      if (order.ndim() != 1 || order.shape(0) == 0) fail("order must be a non-empty 1-D array");
      const Index n = order.shape(0);
      const std::vector<std::int64_t> idx = index_array(order, "order", n, x.rows);
      if (batch_size <= 0) fail("batch_size must be positive");
      std::int64_t* step_count = step_counter(step, n / batch_size + (n % batch_size != 0));
      OptimizerState<T> state = optimizer_state<T>(config, first, second, *step_count);
      ScratchLease<T> scratch = lease<T>();
      stop_if_interrupted();

      const std::function<bool()> should_stop = InterruptPoll();
      EpochResult r;
      {
        GilRelease release;
        r = backprop::train_epoch(arch_, p, config, state, x, y, idx.data(), n, batch_size, record_grad_norms,
                                  should_stop, *scratch);
        *step_count = state.step;  // with the weights, before any Python code runs
      }
      if (r.status == EpochStatus::interrupted) throw py::error_already_set();  // KeyboardInterrupt
      static const char* status_names[] = {"completed", "interrupted", "nonfinite_loss", "nonfinite_update"};
      py::dict result;
      result["status"] = status_names[static_cast<int>(r.status)];
      result["batches"] = r.batches_done;
      result["samples"] = r.samples_done;
      result["loss_sum"] = r.loss_sum;
      result["n_correct"] = r.n_correct;
      result["weight_grad_norm_sums"] = r.weight_grad_norm_sums;
      result["penalty_sum"] = r.penalty_sum;
      return result;
    });
  }

 private:
  // The optimizer's step counter, with room for n_steps more steps: the
  // counter is signed, and Python keeps it at most 2**63 - 2 (MAX_STEP_COUNT).
  static std::int64_t* step_counter(py::array& step, Index n_steps) {
    if (!py::array_t<std::int64_t>::check_(step) || step.ndim() != 1 || step.shape(0) != 1 || !step.writeable())
      fail("step must be a writeable int64 array of shape (1,)");
    check_aligned<std::int64_t>(step, "step");
    auto* step_count = static_cast<std::int64_t*>(step.mutable_data());
    constexpr std::int64_t max_step_count = std::numeric_limits<std::int64_t>::max() - 1;
    if (*step_count < 0) fail("step must be non-negative");
    if (*step_count > max_step_count - n_steps)
      fail("step is " + std::to_string(*step_count) + ": " + std::to_string(n_steps) +
           " more step(s) would pass its maximum " + std::to_string(max_step_count));
    return step_count;
  }

  // The optimizer's state buffers, checked: momentum (or Adam's m) and Adam's v.
  template <class T>
  OptimizerState<T> optimizer_state(const OptimizerConfig& config, const py::object& first, const py::object& second,
                                    std::int64_t step) const {
    OptimizerState<T> state;
    state.step = step;
    const bool adam = config.kind != OptimizerKind::sgd;
    if (adam || config.momentum != 0.0) {
      if (first.is_none()) fail("this optimizer needs a first state buffer");
      py::array a = as_ndarray(first, "first");
      state.first = flat_buffer<T>(a, "first", arch_.n_params());
    }
    if (adam) {
      if (second.is_none()) fail("Adam needs a second state buffer");
      py::array a = as_ndarray(second, "second");
      state.second = flat_buffer<T>(a, "second", arch_.n_params());
    }
    return state;
  }

  static std::vector<Activation> parse_activations(const std::vector<std::string>& names) {
    std::vector<Activation> out;
    for (const auto& name : names) out.push_back(activation_from_name(name));
    return out;
  }

  template <class T>
  ScratchLease<T> lease() const {
    if constexpr (std::is_same_v<T, float>)
      return ScratchLease<T>(scratch_mutex_, scratch_float_);
    else
      return ScratchLease<T>(scratch_mutex_, scratch_double_);
  }

  Architecture arch_;
  // Buffers reused from call to call (scratch.hpp), one set per dtype.
  mutable std::mutex scratch_mutex_;
  mutable Scratch<float> scratch_float_;
  mutable Scratch<double> scratch_double_;
};

// The instruction-set levels this CPU (and its OS) can run, best last. The
// loader in backprop/_core.py asks the baseline module before picking one.
std::vector<std::string> supported_levels() {
  std::vector<std::string> levels{"baseline"};
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                  __builtin_cpu_supports("avx");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
  if (v3) levels.push_back("avx2");
  if (v4) levels.push_back("avx512");
#endif
  return levels;
}

void set_num_threads(int n) {
  if (n < 1) fail("n_threads must be >= 1, got " + std::to_string(n));
  thread_limit().store(n);
}

// The SIMD instruction sets Eigen vectorises with in this module, as
// Eigen::SimdInstructionSetsInUse() names them; it leaves out AVX2 and FMA
// unless AVX-512 is on, so the list is made from Eigen's own switches.
std::string simd_in_use() {
  std::string sets;
  auto add = [&sets](const char* name) { sets += (sets.empty() ? "" : ", ") + std::string(name); };
#ifdef EIGEN_VECTORIZE_AVX512
  add("AVX512");
#endif
#ifdef EIGEN_VECTORIZE_FMA
  add("FMA");
#endif
#ifdef EIGEN_VECTORIZE_AVX2
  add("AVX2");
#endif
#ifdef EIGEN_VECTORIZE_AVX
  add("AVX");
#endif
#ifdef EIGEN_VECTORIZE_SSE
  add("SSE");
#endif
#ifdef EIGEN_VECTORIZE_SSE2
  add("SSE2");
#endif
#ifdef EIGEN_VECTORIZE_SSE3
  add("SSE3");
#endif
#ifdef EIGEN_VECTORIZE_SSSE3
  add("SSSE3");
#endif
#ifdef EIGEN_VECTORIZE_SSE4_1
  add("SSE4.1");
#endif
#ifdef EIGEN_VECTORIZE_SSE4_2
  add("SSE4.2");
#endif
  return sets.empty() ? Eigen::SimdInstructionSetsInUse() : sets;
}

py::dict build_info() {
  py::dict info;
  info["isa"] = BACKPROP_ISA;
#if defined(__clang__)
  info["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = "gcc " __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
#ifdef _OPENMP
  info["openmp"] = _OPENMP;
#else
  info["openmp"] = py::none();
#endif
  info["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                  std::to_string(EIGEN_MINOR_VERSION);
  info["simd"] = simd_in_use();
  return info;
}

}  // namespace

// One module per instruction-set level (see CMakeLists.txt); types are
// module-local so that two levels can be loaded in one process.
PYBIND11_MODULE(BACKPROP_MODULE_NAME, m) {
  m.doc() = "backprop's C++ core: dense-network forward, backward and training loops.";
  // Eigen never starts threads of its own: the core splits work itself (team.hpp).
  Eigen::setNbThreads(1);

  py::enum_<OptimizerKind>(m, "OptimizerKind", py::module_local())
      .value("sgd", OptimizerKind::sgd)
      .value("adam", OptimizerKind::adam)
      .value("adamw", OptimizerKind::adamw);

  py::class_<OptimizerConfig>(m, "OptimizerConfig", py::module_local())
      .def(py::init<>())
      .def_readwrite("kind", &OptimizerConfig::kind)
      .def_readwrite("lr", &OptimizerConfig::lr)
      .def_readwrite("weight_decay", &OptimizerConfig::weight_decay)
      .def_readwrite("momentum", &OptimizerConfig::momentum)
      .def_readwrite("nesterov", &OptimizerConfig::nesterov)
      .def_readwrite("beta1", &OptimizerConfig::beta1)
      .def_readwrite("beta2", &OptimizerConfig::beta2)
      .def_readwrite("eps", &OptimizerConfig::eps)
      .def_readwrite("clip_norm", &OptimizerConfig::clip_norm)
      .def_readwrite("clip_value", &OptimizerConfig::clip_value)
      .def_readwrite("decay_per_batch_weight", &OptimizerConfig::decay_per_batch_weight)
      .def_readwrite("eps_before_bias_correction", &OptimizerConfig::eps_before_bias_correction);

  py::class_<Dataset>(m, "Dataset", py::module_local())
      .def_property_readonly("rows", &Dataset::rows);

  py::class_<Model>(m, "Model", py::module_local())
      .def(py::init<std::vector<Index>, const std::vector<std::string>&, const std::string&, std::vector<bool>,
                    std::vector<double>, std::uint64_t>(),
           py::arg("sizes"), py::arg("activations"), py::arg("loss"), py::arg("norms") = std::vector<bool>{},
           py::arg("dropout") = std::vector<double>{}, py::arg("dropout_seed") = 0)
      .def_property_readonly("n_params", &Model::n_params)
      .def("forward", &Model::forward, py::arg("params"), py::arg("X"), py::arg("check_finite") = false,
           "A^(L) for every row of X: (n_samples, n_out); with check_finite, ValueError for NaN or ±inf in X.")
      .def("evaluate", &Model::evaluate, py::arg("params"), py::arg("X"), py::arg("labels") = py::none(),
           py::arg("targets") = py::none(), py::arg("weights") = py::none(),
           "(Σ w·loss, Σ w·correct classifications, Σ w), w = 1 without weights.")
      .def("gradients", &Model::gradients, py::arg("params"), py::arg("X"), py::arg("labels") = py::none(),
           py::arg("targets") = py::none(), py::arg("weights") = py::none(), py::arg("dropout_step") = 1,
           "(weighted mean loss, flat gradient of the weighted mean loss, weighted fraction of right "
           "classifications).")
      .def("gradient_sum", &Model::gradient_sum, py::arg("params"), py::arg("data"), py::arg("rows"), py::arg("out"),
           "out ← Σ w·∂loss/∂θ over the listed rows of data; returns (Σ w·loss, Σ w·right, Σ w).")
      .def("dataset", &Model::dataset, py::arg("X"), py::arg("labels") = py::none(), py::arg("targets") = py::none(),
           py::arg("weights") = py::none(), "X and its targets, checked once for this model.")
      .def("train_epoch", &Model::train_epoch, py::arg("params"), py::arg("data"), py::arg("order"),
           py::arg("batch_size"), py::arg("config"), py::arg("first"), py::arg("second"), py::arg("step"),
           py::arg("record_grad_norms"), "One epoch of mini-batch training over the rows of data listed in order.")
      .def("optimizer_step", &Model::optimizer_step, py::arg("params"), py::arg("grads"), py::arg("config"),
           py::arg("first"), py::arg("second"), py::arg("step"), py::arg("batch_weight"), py::arg("grad_scale") = 1.0,
           "One optimizer step with the flat gradient grad_scale·grads; False (nothing changed) if not finite.");

  m.def("all_finite", &all_finite_values, py::arg("a"),
        "Whether every value of a float32 or float64 array of 1 or 2 dimensions is finite; None for other "
        "arrays.");
  m.def("build_info", &build_info, "Level, compiler, OpenMP, Eigen version and SIMD of this build.");
  m.def("supported_levels", &supported_levels, "Instruction-set levels this CPU can run, best last.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Use at most n threads (capped by OpenMP's limit).");
  m.def("get_num_threads", &max_team_size, "Threads the core uses at most (from this thread).");
  m.def("_set_sharing", [](int mode) { sharing_override().store(mode < 0 ? -1 : mode > 0 ? 1 : 0); },
        py::arg("mode"), "Tests and benchmarks: -1 automatic, 0 leader alone, 1 always wake workers.");
}
