// The known ways to get a softmax cross-entropy gradient wrong, re-enacted one row at a time, and
// the search for those that explain a caller's candidate.
//
// A mistaken gradient is a base mistake (or none) computed on the problem with some options left
// out, times a sign and a scale; each part that differs from the truth is one FindingCode. Every
// base forms a row in O(classes) (J(z)·g as z ⊙ g - z·<z, g>, never a matrix), so the search is
// O(batch · classes) and holds no gradient-sized buffer; only the explanations that end up as
// findings are formed whole, by MistakenGradient.
//
//   MistakeSearch search(problem, options, a, truth);
//   absl::StatusOr<std::vector<Explanation>> found = search.Run(candidate, ctx);
//   absl::StatusOr<std::vector<double>> grad = search.MistakenGradient((*found)[0], ctx);
#ifndef GRADSERVE_LIB_VERIFY_MISTAKES_H_
#define GRADSERVE_LIB_VERIFY_MISTAKES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/cross_entropy.h"
#include "lib/parallel.h"
#include "lib/verify.h"

namespace gradserve::verify_internal {

// Options a mistaken gradient leaves out.
struct DroppedOptions {
  std::vector<std::string> names;  // as messages show them: "class_weights", "ignore_index=4"
  bool weights = false, smoothing = false, ignore = false;
};

// A reduction mistake: the true gradient times `factor`.
struct ScaleMistake {
  double factor = 1.0;
  std::string why;  // "the 1/4 of the mean reduction is missing"; empty for factor 1
};

// What the gradient was computed as, before any sign or scale mistake.
enum class BaseMistake {
  kNone,                      // the closed form r·(s·a - q)
  kJacobianAtLogits,          // J(z)·dL/dA
  kDiagonalOnlyJacobian,      // (a - a²) ⊙ dL/dA
  kGradientWrtProbabilities,  // dL/dA = -r·q / a
  kSoftmaxNotApplied,         // r·(s·z - q)
};

// One way of re-enacting the candidate that matched it.
struct Explanation {
  DroppedOptions dropped;
  BaseMistake base = BaseMistake::kNone;
  bool sign_flipped = false;
  ScaleMistake scale;
  std::vector<FindingCode> codes;  // one per part that differs from the truth, ascending
  double residual = 0.0;           // max |candidate - mistaken gradient|
};

// The non-empty subsets of the options whose omission changes this problem's gradient.
std::vector<DroppedOptions> OptionSubsets(const LossProblem<double>& problem);

// The scales a mistaken reduction multiplies this problem's true gradient by (none equal to 1).
std::vector<ScaleMistake> ScaleMistakes(const LossProblem<double>& problem);

class MistakeSearch {
 public:
  // `a` is softmax(logits) and `truth` the analytic gradient; all must outlive the search.
  MistakeSearch(const LossProblem<double>& problem, const VerifyOptions& options,
                const RowMatrix<double>& a, const RowMatrix<double>& truth);

  // Every explanation whose gradient matches `candidate` within the tolerances while differing
  // from the truth. Polls `ctx.is_cancelled` before each base mistake and between rows:
  // CancelledError once it fires.
  absl::StatusOr<std::vector<Explanation>> Run(const double* candidate, const ExecContext& ctx) const;

  // The gradient `e` describes, [batch, classes] row-major. Polls `ctx.is_cancelled` between
  // blocks of rows: CancelledError once it fires.
  absl::StatusOr<std::vector<double>> MistakenGradient(const Explanation& e,
                                                       const ExecContext& ctx) const;

 private:
  class Rows;
  struct Variant;

  // Compares the rows of one base mistake with the candidate for every variant, until none
  // matches or the rows end; false if cancelled.
  bool Walk(Rows& rows, const double* candidate, std::vector<Variant>* variants,
            const ExecContext& ctx) const;

  const LossProblem<double>& problem_;
  const VerifyOptions& options_;
  const RowMatrix<double>& a_;
  const RowMatrix<double>& truth_;
};

}  // namespace gradserve::verify_internal

#endif  // GRADSERVE_LIB_VERIFY_MISTAKES_H_
