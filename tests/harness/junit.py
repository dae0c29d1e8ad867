"""Per-test outcomes from pytest's --junitxml files, for scripts/test.

    python -m tests.harness.junit same NATIVE OTHER PREFIX
        exit 1 unless every test of OTHER has the outcome it has in NATIVE,
        and NATIVE's tests under PREFIX ('tests/unit/') are all in OTHER
    python -m tests.harness.junit summary LABEL=FILE ...
        one line per run: passed, failed, skipped (the data of docs/matrix.md)
"""

import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    """{test id: 'passed' | 'failed' | 'error' | 'skipped'} of one junit file."""
    result = {}
    for case in ET.parse(path).iter("testcase"):
        test_id = "%s::%s" % (case.get("classname", ""), case.get("name", ""))
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcome = "passed"
        if "error" in kinds:
            outcome = "error"
        elif "failure" in kinds:
            outcome = "failed"
        elif "skipped" in kinds:
            outcome = "skipped"
        # a test whose teardown errs has two entries: the worst outcome counts
        if result.get(test_id) in ("failed", "error"):
            continue
        result[test_id] = outcome
    return result


def differences(native, other, prefix):
    """Lines naming each test whose outcome differs (or that one run lacks)."""
    dotted = prefix.strip("/").replace("/", ".")      # junit class names: tests.unit.test_x
    wanted = {k: v for k, v in native.items()
              if (k.split("::")[0] + ".").startswith(dotted + ".")}
    lines = []
    for test_id in sorted(set(wanted) | set(other)):
        a, b = wanted.get(test_id, "absent"), other.get(test_id, "absent")
        if a != b:
            lines.append("%s: %s natively, %s here" % (test_id, a, b))
    return lines


def summary_line(label, path):
    counts = {}
    for outcome in outcomes(path).values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return "%-36s %5d passed %5d failed %5d skipped" % (
        label, counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0),
        counts.get("skipped", 0))


def main(argv):
    if argv[0] == "same":
        native, other, prefix = argv[1:4]
        b = outcomes(other)
        lines = differences(outcomes(native), b, prefix)
        for line in lines:
            print(line)
        if not lines:
            print("%d tests, each with the same outcome" % len(b))
        return 1 if lines else 0
    if argv[0] == "summary":
        for arg in argv[1:]:
            label, _, path = arg.partition("=")
            try:
                print(summary_line(label, path))
            except (OSError, ET.ParseError):
                print("%-36s no results" % label)
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
