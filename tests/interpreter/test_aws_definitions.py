"""Definitions written for AWS behave as on AWS: Jayway JSONPath corner cases and ``lambda:invoke``'s result.

AWS Step Functions evaluates JSONPath with Jayway JsonPath: ``$.[0]`` is ``$[0]``, and a union of
fields that ends a path (``['bucket','key']``) is one object holding those fields, per element
after a wildcard. ``arn:aws:states:::lambda:invoke`` returns the Lambda Invoke response with the
SDK's HTTP metadata (``SdkHttpMetadata``, ``SdkResponseMetadata``) around the ``Payload``.
"""

from __future__ import annotations

import dmap.asl

from .support import Harness, single

INVOKE = "arn:aws:states:::lambda:invoke"


def test_a_dot_before_an_index_validates_and_reads_the_element_as_on_aws(sfn: Harness) -> None:
    definition = single({"Type": "Pass", "Parameters": {"first.$": "$.[0]", "rest.$": "$.[1:]"}})
    assert [d for d in dmap.asl.validate(definition) if d.severity == "ERROR"] == []
    result = sfn.run(definition, [{"id": 1}, {"id": 2}, {"id": 3}])
    assert result.output == {"first": {"id": 1}, "rest": [{"id": 2}, {"id": 3}]}


def test_a_field_union_after_a_wildcard_gives_one_object_per_element_as_jayway_does(sfn: Harness) -> None:
    items = [{"bucket": "b1", "key": "k1", "size": 1}, {"bucket": "b2", "key": "k2"}, {"bucket": "b3"}]
    definition = single({"Type": "Pass", "Parameters": {"r.$": "$[*]['bucket','key']", "one.$": "$[0]['key','size']"}})
    result = sfn.run(definition, items)
    assert result.output == {
        "r": [{"bucket": "b1", "key": "k1"}, {"bucket": "b2", "key": "k2"}, {"bucket": "b3"}],
        "one": {"key": "k1", "size": 1},
    }
