# The copied test files are run through the classes of test_*.py here (with taskhub's backend), not as
# they are (with the backends of their repositories).
collect_ignore = ["vendor"]
