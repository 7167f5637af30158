"""The package's taskhub tasks: `@job_task` adds each to taskhub's catalog when taskhub imports this
module at start (the package's app is installed: its `tasks` module is imported)."""

from jobs.tasks.registry import job_task

from .models import Tally

COUNT_WORDS_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 100_000}},
    "required": ["text"],
    "additionalProperties": False,
}

SUM_NUMBERS_SCHEMA = {
    "type": "object",
    "properties": {
        "numbers": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 10_000},
    },
    "required": ["numbers"],
    "additionalProperties": False,
}


@job_task(name="taskhub_example_tasks.count_words", aliases=("count_words",), schema=COUNT_WORDS_SCHEMA)
def count_words(self, text: str) -> dict:
    """Count the words of a text, a line at a time, and store the count (Tally)."""
    lines = text.splitlines() or [text]
    words = 0
    for number, line in enumerate(lines, start=1):
        words += len(line.split())
        self.progress(100 * number / len(lines), f"line {number} of {len(lines)}")
    Tally.objects.create(job_id=self.request.id, kind="words", value=words)
    return {"words": words, "lines": len(lines)}


@job_task(name="taskhub_example_tasks.sum_numbers", schema=SUM_NUMBERS_SCHEMA, max_retries=1)
def sum_numbers(self, numbers: list[int]) -> dict:
    """Add numbers up in ten steps, and store the sum (Tally)."""
    total = 0
    step = max(1, len(numbers) // 10)
    for start in range(0, len(numbers), step):
        total += sum(numbers[start : start + step])
        self.progress(100 * min(len(numbers), start + step) / len(numbers), f"{start + step} numbers added")
    Tally.objects.create(job_id=self.request.id, kind="sum", value=total)
    return {"sum": total}
