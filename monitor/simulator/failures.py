"""Dead jobs' logs as DLI returns them (Livy's batch log: its last records), one set per failure
reason, from the messages Spark, YARN and Livy really print. The simulator gives them to the
jobs it kills (``--failure-mix``); the classifier's tests use them as its real-message cases.
Some carry fake credentials, as real launch logs do, so redaction is tested end to end.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["EMPTY_LOG", "FAILURE_LOGS", "FAKE_SECRETS", "parse_mix", "pick_log"]

#: credentials planted in the logs below; none may ever reach an event, a metric or a log store
FAKE_SECRETS = (
    # each carries the marker the test suite's leak scan looks for in every output
    "FAKES3CRETKEY0123456789abcdefghijKLMNOP",
    "hunter2-S3CRET-password",
    "jdbcS3CRETpass",
)

_SUBMIT = (
    "stdout: ",
    "stderr: ",
    "26/12/04 10:11:59 INFO SparkContext: Running Spark version 3.3.1",
    "26/12/04 10:12:01 INFO Client: spark.hadoop.fs.obs.secret.key=" + FAKE_SECRETS[0],
)

FAILURE_LOGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "oom": (
        (
            *_SUBMIT,
            "26/12/04 10:14:20 ERROR Executor: Exception in task 3.0 in stage 2.0 (TID 41)",
            "java.lang.OutOfMemoryError: Java heap space",
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            "stderr: ",
            (
                "YARN Diagnostics: Container [pid=4242,containerID=container_1701_0001_01_000002] "
                "is "
                "running beyond physical memory limits. Current usage: 4.5 GB of 4 GB physical "
                "memory "
                "used; 6.3 GB of 8.4 GB virtual memory used. Killing container. Exit code is 143"
            ),
        ),
        (
            "\nstdout: ",
            (
                "\nstderr: 26/12/04 10:20:03 WARN TaskSetManager: Lost task 1.0 in stage 4.0: "
                "ExecutorLostFailure (executor 3 exited caused by one of the running tasks) "
                "Reason: "
                "Container killed by YARN for exceeding memory limits. 5.5 GB of 5.5 GB physical "
                "memory used. Consider boosting spark.yarn.executor.memoryOverhead."
            ),
            "\nYARN Diagnostics: ",
        ),
    ),
    "executor_lost": (
        (
            *_SUBMIT,
            (
                "26/12/04 10:30:44 ERROR TaskSchedulerImpl: Lost executor 7 on 192.168.0.12: "
                "Remote "
                "RPC client disassociated. Likely due to containers exceeding thresholds, or "
                "network "
                "issues. Check driver logs for WARN messages."
            ),
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            (
                "stderr: Job aborted due to stage failure: Task 0 in stage 1.0 failed 4 times, "
                "most "
                "recent failure: Lost task 0.3 in stage 1.0 (TID 7, node-2, executor 2): "
                "ExecutorLostFailure (executor 2 exited unrelated to the running tasks) Reason: "
                "Container marked as failed: container_e02_1701_0001_01_000003 on host: node-2. "
                "Exit status: -100. Diagnostics: Container released on a *lost* node"
            ),
            "YARN Diagnostics: ",
        ),
    ),
    "resource_unavailable": (
        (
            *_SUBMIT,
            (
                "26/12/04 10:40:12 WARN YarnScheduler: Initial job has not accepted any resources; "
                "check your cluster UI to ensure that workers are registered and have sufficient "
                "resources"
            ),
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            "stderr: ",
            (
                "YARN Diagnostics: No YARN application is found with tag livy-batch-12-hbdnkw2c in "
                "300 seconds. This may be because 1) spark-submit fail to submit application to "
                "YARN; or 2) YARN cluster doesn't have enough resources to start the application "
                "in "
                "time. Please check Livy log and YARN log to know the details."
            ),
        ),
    ),
    "input_not_found": (
        (
            *_SUBMIT,
            (
                'Exception in thread "main" org.apache.spark.sql.AnalysisException: Path does not '
                "exist: obs://lake-raw/clicks/dt=2026-12-03"
            ),
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            (
                "stderr: java.io.FileNotFoundException: File does not exist: "
                "/user/omm/input/orders.csv"
            ),
            "YARN Diagnostics: ",
        ),
    ),
    "permission_denied": (
        (
            *_SUBMIT,
            (
                'Exception in thread "main" org.apache.hadoop.security.AccessControlException: '
                'Permission denied: user=dli, access=WRITE, inode="/warehouse/sales":hdfs:hadoop:'
                "drwxr-xr-x"
            ),
            "YARN Diagnostics: ",
        ),
    ),
    "dependency_missing": (
        (
            *_SUBMIT,
            'Exception in thread "main" java.lang.ClassNotFoundException: com.example.etl.Main',
            "YARN Diagnostics: ",
        ),
        (
            "stdout: Traceback (most recent call last):",
            '  File "/tmp/spark-3f1/sessionize.py", line 3, in <module>',
            "ModuleNotFoundError: No module named 'pandas'",
            "stderr: ",
            "YARN Diagnostics: ",
        ),
    ),
    "sql_error": (
        (
            *_SUBMIT,
            (
                'Exception in thread "main" org.apache.spark.sql.AnalysisException: Table or view '
                "not found: sales.orders_v2; line 1 pos 14;"
            ),
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            "stderr: org.apache.spark.sql.catalyst.parser.ParseException: ",
            "mismatched input 'FORM' expecting {<EOF>, ';'}(line 1, pos 9)",
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            (
                "stderr: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with "
                "name "
                "`amount` cannot be resolved. Did you mean one of the following? [`amt`, `id`]"
            ),
            "YARN Diagnostics: ",
        ),
    ),
    "timeout": (
        (
            *_SUBMIT,
            (
                'Exception in thread "main" java.util.concurrent.TimeoutException: Futures timed '
                "out after [300 seconds]"
            ),
            "YARN Diagnostics: ",
        ),
    ),
    "killed": (
        (
            "stdout: ",
            "stderr: ",
            (
                "YARN Diagnostics: Application application_1701_0042 was killed by user dli at "
                "10.0.0.7"
            ),
        ),
        ("stdout: ", "stderr: Session stopped by user", "YARN Diagnostics: "),
    ),
    "app_error": (
        (
            *_SUBMIT,
            "26/12/04 11:02:17 INFO Client: jdbc url jdbc:mysql://etl:"
            + FAKE_SECRETS[2]
            + "@db.internal:3306/sales",
            (
                'Exception in thread "main" java.lang.IllegalArgumentException: invalid date '
                "2026-13-01"
            ),
            "YARN Diagnostics: User class threw exception: java.lang.IllegalArgumentException",
        ),
        (
            "stdout: Traceback (most recent call last):",
            '  File "/tmp/spark-9a2/report.py", line 41, in <module>',
            "ValueError: password=" + FAKE_SECRETS[1] + " rejected by upstream",
            "stderr: ",
            "YARN Diagnostics: ",
        ),
        (
            "stdout: ",
            (
                "stderr: Job aborted due to stage failure: Task 3 in stage 2.0 failed 4 times, "
                "most "
                "recent failure: Lost task 3.3 in stage 2.0 (TID 41, node-3, executor 2): "
                "java.lang.ArithmeticException: / by zero"
            ),
            "YARN Diagnostics: -XX:OnOutOfMemoryError='kill %p' spark-submit exited with code 1",
        ),
    ),
    "unknown": (("stdout: ", "stderr: ", "YARN Diagnostics: "),),
}


#: what a job's row shows before anything was logged (the seed pages' example)
EMPTY_LOG = ("stdout: ", "stderr: ", "YARN Diagnostics: ")


def pick_log(job_id: str, mix: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """A dead job's log, drawn by its id (stable, and without touching the world's random
    stream) from the reasons of ``mix`` in proportion to their weights."""
    total = sum(weight for _, weight in mix)
    if total <= 0:
        return EMPTY_LOG
    draw = zlib.crc32(job_id.encode()) % total
    for reason, weight in mix:
        if draw < weight:
            logs = FAILURE_LOGS[reason]
            return logs[zlib.crc32(job_id[::-1].encode()) % len(logs)]
        draw -= weight
    return EMPTY_LOG  # pragma: no cover (the weights add up to total)


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``reason=weight,…`` (a reason alone weighs 1); ``ValueError`` names what is wrong."""
    mix = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        reason, _, weight = part.partition("=")
        if reason not in FAILURE_LOGS:
            raise ValueError(f"unknown failure reason {reason!r}")
        if weight and not weight.isdigit():
            raise ValueError(f"weight of {reason!r} is not a whole number")
        mix.append((reason, int(weight or 1)))
    if not mix:
        raise ValueError("no failure reason")
    return tuple(mix)
