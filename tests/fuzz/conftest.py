"""pytest 9 and schemathesis 4.32: a compatibility shim for the fuzz tests only.

schemathesis' lazy schema fixture (`schemathesis.pytest.from_fixture`) reads and rewrites
`request.node._nodeid` to label each operation's subtest; pytest 9 keeps a node's id elsewhere
(`Node.nodeid` over `_id`) and has no `_nodeid`. Reading it now answers the node's id, and a
rewrite is dropped: subtests keep the test's own id in reports, which is all it changes. Remove
this file once schemathesis stops touching the private attribute.
"""
from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda node: node.nodeid, lambda node, value: None)
