// A synthetic clickstream (stream/synthetic) held in memory, for learner tests.
#ifndef FRESHET_TESTS_LEARNER_GENERATED_EVENTS_H_
#define FRESHET_TESTS_LEARNER_GENERATED_EVENTS_H_

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "stream/event.h"
#include "stream/synthetic/synthetic_stream.h"

namespace freshet::learner {

inline std::vector<stream::Event> GeneratedEvents(int64_t events, int32_t users, int32_t items,
                                                  uint64_t seed) {
  stream::SyntheticStreamOptions o;
  o.events = events;
  o.users = users;
  o.items = items;
  o.seed = seed;
  auto generator = stream::SyntheticStream::Create(o);
  EXPECT_TRUE(generator.ok()) << generator.status();
  std::vector<stream::Event> out(static_cast<size_t>(events));
  if (generator.ok()) {
    for (stream::Event& e : out) generator->Next(&e);
  }
  return out;
}

}  // namespace freshet::learner

#endif  // FRESHET_TESTS_LEARNER_GENERATED_EVENTS_H_
